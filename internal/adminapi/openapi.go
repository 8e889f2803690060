package adminapi

import (
	"reflect"
	"strconv"
	"strings"
	"time"
)

// openAPI builds the OpenAPI 3.0 document from the route tables, so the
// document and the handlers cannot drift apart. Schemas are derived from
// the wire types by reflection over their json tags.
func openAPI(routes []route, public []publicRoute) map[string]any {
	schemas := map[string]any{"Problem": schemaOf(reflect.TypeFor[Problem](), nil)}
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(rt.Method, rt.Path),
			"responses": map[string]any{
				strconv.Itoa(rt.Status): map[string]any{"description": "success", "content": jsonContent(ref(rt.Reply, schemas))},
				"default":               map[string]any{"description": "refusal", "content": jsonContent(map[string]any{"$ref": "#/components/schemas/Problem"})},
			},
			"security": []any{map[string]any{"adminToken": []string{}}},
		}
		if rt.Resource == selfService {
			op["x-latchkey-scope"] = "contractor token"
		} else if rt.Resource != "" {
			op["x-latchkey-scope"] = "admin:" + rt.Resource + ":" + rt.Action
		}
		var params []any
		for _, seg := range strings.Split(rt.Path, "/") {
			if strings.HasPrefix(seg, "{") {
				params = append(params, param(strings.Trim(seg, "{}"), "path", true))
			}
		}
		for _, q := range rt.Query {
			params = append(params, param(q, "query", false))
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Body != nil {
			op["requestBody"] = map[string]any{"required": true, "content": jsonContent(ref(rt.Body, schemas))}
		}
		if paths[rt.Path] == nil {
			paths[rt.Path] = map[string]any{}
		}
		paths[rt.Path][strings.ToLower(rt.Method)] = op
	}
	for _, rt := range public {
		content := map[string]any{rt.Produces: map[string]any{"schema": map[string]any{"type": "string"}}}
		if rt.Produces == "" {
			content = jsonContent(ref(rt.Reply, schemas))
		}
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(rt.Method, rt.Path),
			"responses": map[string]any{
				strconv.Itoa(rt.Status): map[string]any{"description": "success", "content": content},
				"default":               map[string]any{"description": "failure", "content": jsonContent(map[string]any{"$ref": "#/components/schemas/Problem"})},
			},
			"security": []any{}, // no token
		}
		paths[rt.Path] = map[string]any{strings.ToLower(rt.Method): op}
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "latchkey admin API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"adminToken": map[string]any{"type": "http", "scheme": "bearer", "description": "an admin token (lka_...)"},
			},
		},
	}
}

// operationID names an operation by its method and path without /v1:
// GET /v1/tokens/{id} is getTokensId.
func operationID(method, path string) string {
	id := strings.ToLower(method)
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/v1/"), "/") {
		seg = strings.Trim(seg, "{}")
		if seg == "" {
			continue
		}
		id += strings.ToUpper(seg[:1]) + seg[1:]
	}
	return id
}

func param(name, in string, required bool) map[string]any {
	return map[string]any{"name": name, "in": in, "required": required, "schema": map[string]any{"type": "string"}}
}

func jsonContent(schema any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

// ref registers v's type in schemas and returns a reference to it (or an
// array of references).
func ref(v any, schemas map[string]any) map[string]any {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Slice {
		return map[string]any{"type": "array", "items": ref(reflect.Zero(t.Elem()).Interface(), schemas)}
	}
	if _, ok := schemas[t.Name()]; !ok {
		schemas[t.Name()] = schemaOf(t, schemas)
	}
	return map[string]any{"$ref": "#/components/schemas/" + t.Name()}
}

var timeType = reflect.TypeFor[time.Time]()

// schemaOf describes a Go type as a JSON schema, following json tags.
func schemaOf(t reflect.Type, schemas map[string]any) map[string]any {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.String:
		return map[string]any{"type": "string"}
	case t.Kind() == reflect.Bool:
		return map[string]any{"type": "boolean"}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return map[string]any{"type": "integer"}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return map[string]any{"type": "string", "format": "byte"}
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case t.Kind() == reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	}
	props := map[string]any{}
	var required []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		props[name] = schemaOf(f.Type, schemas)
		if !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if required != nil {
		s["required"] = required
	}
	return s
}
