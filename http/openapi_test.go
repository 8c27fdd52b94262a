package http_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	tbhttp "github.com/timebox-dev/timebox/http"
)

// openAPIDoc is the part of the OpenAPI document the tests look at.
type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]any `json:"schemas"`
	} `json:"components"`
}

func TestOpenAPI(t *testing.T) {
	e := newEnv(t, nil)
	resp := e.raw("GET", "/api/v1/openapi.json", "", "")
	if resp.status != 200 || resp.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET openapi.json = %d %s", resp.status, resp.header.Get("Content-Type"))
	}
	var doc openAPIDoc
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		t.Fatalf("the document is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Errorf("openapi = %q, want 3.0.x", doc.OpenAPI)
	}
	var documented []string
	for path, item := range doc.Paths {
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
			var op map[string]any
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s %s has no responses", method, path)
			}
			key := strings.ToUpper(method) + " " + path
			if got, want := queryParams(t, resp.body, op), tbhttp.QueryParams(e.api)[key]; !slices.Equal(got, slices.Sorted(slices.Values(want))) {
				t.Errorf("%s documents query parameters %v, serves %v", key, got, want)
			}
		}
	}
	served := tbhttp.Routes(e.api)
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("documented routes:\n%s\nserved routes:\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
	// Every served route answers (not 404/405) and every documented error uses the schema.
	for _, rt := range served {
		method, path, _ := strings.Cut(rt, " ")
		r := e.raw(method, strings.ReplaceAll(path, "{id}", "someid"), "alice", "{}")
		if r.status == http.StatusMethodNotAllowed || (r.status == 404 && strings.Contains(string(r.body), "no such route")) {
			t.Errorf("%s is documented but not served: %d %s", rt, r.status, r.body)
		}
	}
	if _, ok := doc.Components.Schemas["Error"]; !ok {
		t.Error("no Error schema")
	}
	// Every $ref points to something that exists.
	var raw map[string]any
	json.Unmarshal(resp.body, &raw)
	checkRefs(t, raw, raw)
}

// checkRefs fails the test for each "$ref" in v that does not resolve in doc.
func checkRefs(t *testing.T, doc, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == "$ref" {
				node := doc
				for _, part := range strings.Split(strings.TrimPrefix(x.(string), "#/"), "/") {
					m, _ := node.(map[string]any)
					node = m[part]
				}
				if node == nil {
					t.Errorf("dangling $ref %s", x)
				}
				continue
			}
			checkRefs(t, doc, x)
		}
	case []any:
		for _, x := range v {
			checkRefs(t, doc, x)
		}
	}
}

// queryParams returns the sorted names of op's query parameters, resolving $refs in doc.
func queryParams(t *testing.T, doc []byte, op map[string]any) []string {
	var root map[string]any
	json.Unmarshal(doc, &root)
	params := root["components"].(map[string]any)["parameters"].(map[string]any)
	var names []string
	list, _ := op["parameters"].([]any)
	for _, p := range list {
		m := p.(map[string]any)
		if ref, ok := m["$ref"].(string); ok {
			m = params[strings.TrimPrefix(ref, "#/components/parameters/")].(map[string]any)
		}
		if m["in"] == "query" {
			names = append(names, m["name"].(string))
		}
	}
	slices.Sort(names)
	return names
}
