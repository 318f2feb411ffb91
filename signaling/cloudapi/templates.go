package cloudapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
)

// TemplateCategory is a message template category allowed for call
// permission requests.
type TemplateCategory string

// Categories a call_permission_request template may have.
const (
	CategoryMarketing TemplateCategory = "MARKETING"
	CategoryUtility   TemplateCategory = "UTILITY"
)

// PermissionTemplate is a call-permission template to create: a BODY
// (required), optional text HEADER and FOOTER, and the
// {"type":"call_permission_request"} component.
type PermissionTemplate struct {
	Name     string           // lower-case letters, digits, underscores
	Language string           // "en_US"
	Category TemplateCategory // MARKETING | UTILITY
	BodyText string           // ≤ 1024 characters; {{1}}, {{2}}… placeholders need BodyExamples
	// BodyExamples are sample values for the body's {{n}} placeholders, one
	// per placeholder, as Meta requires for review.
	BodyExamples []string
	HeaderText   string // optional, ≤ 60 characters
	FooterText   string // optional, ≤ 60 characters
}

// Template text limits (Meta's template rules).
const (
	MaxTemplateBody   = 1024
	MaxTemplateHeader = 60
	MaxTemplateFooter = 60
)

var placeholderRE = regexp.MustCompile(`\{\{([0-9]+)\}\}`)

// Validate checks the template before it is sent.
func (t PermissionTemplate) Validate() error {
	if err := (TemplateRef{Name: t.Name, Language: t.Language}).Validate(); err != nil {
		return err
	}
	if t.Category != CategoryMarketing && t.Category != CategoryUtility {
		return fmt.Errorf("%w: template category %q must be MARKETING or UTILITY", ErrBadInput, t.Category)
	}
	if err := firstErr(
		checkText("template body", t.BodyText, MaxTemplateBody, true),
		checkText("template header", t.HeaderText, MaxTemplateHeader, false),
		checkText("template footer", t.FooterText, MaxTemplateFooter, false),
	); err != nil {
		return err
	}
	if placeholderRE.MatchString(t.HeaderText) || placeholderRE.MatchString(t.FooterText) {
		return fmt.Errorf("%w: header and footer must be plain text (no {{n}})", ErrBadInput)
	}
	seen := map[int]bool{}
	for _, m := range placeholderRE.FindAllStringSubmatch(t.BodyText, -1) {
		n, _ := strconv.Atoi(m[1])
		seen[n] = true
	}
	for i := 1; i <= len(seen); i++ {
		if !seen[i] {
			return fmt.Errorf("%w: template body placeholders must be {{1}}..{{%d}} without gaps", ErrBadInput, len(seen))
		}
	}
	if len(seen) != len(t.BodyExamples) {
		return fmt.Errorf("%w: template body has %d placeholders but %d examples", ErrBadInput, len(seen), len(t.BodyExamples))
	}
	for i, e := range t.BodyExamples {
		if err := checkText(fmt.Sprintf("body example %d", i+1), e, MaxTemplateParam, true); err != nil {
			return err
		}
	}
	return nil
}

type createTemplateBody struct {
	Name       string            `json:"name"`
	Language   string            `json:"language"`
	Category   TemplateCategory  `json:"category"`
	Components []createComponent `json:"components"`
}

type createComponent struct {
	Type    string          `json:"type"`
	Format  string          `json:"format,omitempty"`
	Text    string          `json:"text,omitempty"`
	Example *templateSample `json:"example,omitempty"`
}

type templateSample struct {
	BodyText [][]string `json:"body_text"`
}

// TemplateInfo is Meta's answer to a template creation.
type TemplateInfo struct {
	ID       string `json:"id"`
	Status   string `json:"status"`   // PENDING, APPROVED, REJECTED...
	Category string `json:"category"` // as Meta classified it
}

func (t *TemplateInfo) check() error {
	if t.ID == "" {
		return errors.New("no template id")
	}
	return nil
}

// CreatePermissionTemplate submits a call-permission template for review:
// POST /<WABA_ID>/message_templates {name, language, category,
// components:[HEADER?, BODY, FOOTER?, {"type":"call_permission_request"}]}.
// Not repeated once it may have reached Meta (a repeat is refused as a
// duplicate name): ErrOutcomeUnknown then.
func (c *Client) CreatePermissionTemplate(ctx context.Context, wabaID string, t PermissionTemplate) (TemplateInfo, error) {
	if err := firstErr(checkNode("WABA id", wabaID), t.Validate()); err != nil {
		return TemplateInfo{}, fmt.Errorf("cloudapi: %s: %w", ActionCreateTemplate, err)
	}
	b := createTemplateBody{Name: t.Name, Language: t.Language, Category: t.Category}
	if t.HeaderText != "" {
		b.Components = append(b.Components, createComponent{Type: "HEADER", Format: "TEXT", Text: t.HeaderText})
	}
	body := createComponent{Type: "BODY", Text: t.BodyText}
	if len(t.BodyExamples) > 0 {
		body.Example = &templateSample{BodyText: [][]string{t.BodyExamples}}
	}
	b.Components = append(b.Components, body)
	if t.FooterText != "" {
		b.Components = append(b.Components, createComponent{Type: "FOOTER", Text: t.FooterText})
	}
	b.Components = append(b.Components, createComponent{Type: "call_permission_request"})
	var info TemplateInfo
	if err := c.do(ctx, request{action: ActionCreateTemplate, method: http.MethodPost, node: wabaID,
		path: "message_templates", body: b}, &info); err != nil {
		return TemplateInfo{}, err
	}
	return info, nil
}
