package cloudapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

type permissionRequestBody struct {
	MessagingProduct string `json:"messaging_product"`
	RecipientType    string `json:"recipient_type"`
	To               string `json:"to"`
	Type             string `json:"type"`
	Interactive      struct {
		Type string `json:"type"`
		Body struct {
			Text string `json:"text"`
		} `json:"body"`
		Action struct {
			Name string `json:"name"`
		} `json:"action"`
	} `json:"interactive"`
}

type messagesAnswer struct {
	Messages []struct {
		ID string `json:"id"`
	} `json:"messages"`
}

func (a *messagesAnswer) check() error {
	if len(a.Messages) == 0 || a.Messages[0].ID == "" {
		return errors.New("no messages[0].id")
	}
	return nil
}

// SendCallPermissionRequest sends the free-form interactive
// call_permission_request message (valid inside the 24 h customer service
// window) and returns its wamid. Like Connect it is retried only when the
// connection was refused before sending; otherwise a failure after the
// request may have reached Meta wraps ErrOutcomeUnknown.
func (c *Client) SendCallPermissionRequest(ctx context.Context, to, bodyText string) (messageID string, err error) {
	if err := checkNumber("to", to); err != nil {
		return "", fmt.Errorf("cloudapi: %s: %w", ActionSendPermissionRequest, err)
	}
	if strings.TrimSpace(bodyText) == "" || utf8.RuneCountInString(bodyText) > MaxPermissionText || !utf8.ValidString(bodyText) {
		return "", fmt.Errorf("cloudapi: %s: %w: body text must be 1-%d characters of UTF-8",
			ActionSendPermissionRequest, ErrBadInput, MaxPermissionText)
	}
	b := permissionRequestBody{MessagingProduct: messagingProduct, RecipientType: "individual", To: to, Type: "interactive"}
	b.Interactive.Type = "call_permission_request"
	b.Interactive.Body.Text = bodyText
	b.Interactive.Action.Name = "call_permission_request"
	var ans messagesAnswer
	err = c.do(ctx, request{
		action: ActionSendPermissionRequest, method: http.MethodPost, path: "messages", subject: maskPhone(to), body: b,
	}, &ans)
	if err != nil {
		return "", err
	}
	return ans.Messages[0].ID, nil
}
