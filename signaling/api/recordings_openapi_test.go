package api_test

import (
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/callgw/callgw/recording"
	"github.com/callgw/callgw/signaling/api"
)

// TestOpenAPIRecordingSchemas: the recording objects the API answers are
// documented field for field.
func TestOpenAPIRecordingSchemas(t *testing.T) {
	s, _ := loadSpec(t)
	for name, v := range map[string]any{
		"RecordingEntry":  api.RecordingEntry{},
		"RecordingStatus": api.RecordingStatus{},
		"RecordedCall":    recording.Call{},
		"Turn":            recording.Turn{},
		"RecordingAccess": recording.Access{},
	} {
		t.Run(name, func(t *testing.T) {
			sc, ok := s.Components.Schemas[name]
			if !ok {
				t.Fatalf("no schema %s", name)
			}
			all, always := jsonFields(reflect.TypeOf(v))
			var doc []string
			for k := range sc.Properties {
				doc = append(doc, k)
			}
			sort.Strings(doc)
			if !slices.Equal(doc, all) {
				t.Errorf("properties %v\nGo fields  %v", doc, all)
			}
			req := slices.Clone(sc.Required)
			sort.Strings(req)
			if !slices.Equal(req, always) {
				t.Errorf("required %v\nalways set %v", req, always)
			}
		})
	}
}
