package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// One source for every schema: each tool's arguments are a Go struct whose
// json tags name the arguments (required unless omitempty) and whose
// jsonschema tags describe them. argSchema derives the input schema from
// that struct once, when the server is built; decodeArgs checks a call's
// raw arguments against the same schema before unmarshalling them, so the
// schema a client reads and the validation it meets cannot disagree.

// schemaOptions maps the types whose JSON is not their Go shape.
var schemaOptions = &jsonschema.ForOptions{TypeSchemas: map[reflect.Type]*jsonschema.Schema{
	reflect.TypeFor[json.RawMessage](): {Description: "Any JSON value, as the platform answered it."},
}}

// argSchema is a tool's input schema, derived from its argument struct.
type argSchema struct {
	schema *jsonschema.Schema
	raw    json.RawMessage
}

// mustSchema derives the schema of T, applies edit (bounds, enums and
// defaults the struct cannot say) and encodes it. It panics on a type
// jsonschema-go cannot describe: the argument structs are fixed at compile
// time, and the tests build every tool.
func mustSchema[T any](edit func(props map[string]*jsonschema.Schema)) *argSchema {
	s, err := jsonschema.For[T](schemaOptions)
	if err != nil {
		panic(fmt.Sprintf("mcp: schema of %T: %v", *new(T), err))
	}
	tidy(s)
	if edit != nil {
		edit(s.Properties)
	}
	raw, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("mcp: encode schema of %T: %v", *new(T), err))
	}
	return &argSchema{schema: s, raw: raw}
}

// tidy makes every nullable type ("null" or X, from a Go pointer or slice)
// plain X: an optional argument is left out, not given as null.
func tidy(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	if len(s.Types) == 2 && s.Types[0] == "null" {
		s.Type, s.Types = s.Types[1], nil
	}
	for _, p := range s.Properties {
		tidy(p)
	}
	tidy(s.Items)
}

// rawArguments answers a call's arguments as the client sent them.
func rawArguments(req mcpgo.CallToolRequest) ([]byte, error) {
	if len(req.Params.RawArguments) > 0 {
		return req.Params.RawArguments, nil
	}
	if raw, ok := req.Params.Arguments.(json.RawMessage); ok {
		return raw, nil
	}
	return json.Marshal(req.Params.Arguments)
}

// bind decodes a tool call's arguments into v, which must be the struct the
// schema was derived from.
func (a *argSchema) bind(req mcpgo.CallToolRequest, v any) error {
	raw, err := rawArguments(req)
	if err != nil {
		return fmt.Errorf("invalid arguments: %v", err)
	}
	return a.decode(raw, v)
}

// decode checks raw against the schema — exact, case-sensitive names, each
// given once, of the declared types, required ones present, in every nested
// object — and then unmarshals it into v. Its errors name the JSON path of
// the argument (output.path, bbox[3]) and the type expected.
func (a *argSchema) decode(raw []byte, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := walk(dec, a.schema, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid arguments: must be one JSON object of named arguments")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &jobs.FieldError{Field: te.Field, Problem: fmt.Sprintf("is out of range, got %s", te.Value)}
		}
		return fmt.Errorf("invalid arguments: %v", err)
	}
	return nil
}

// walk reads one JSON value from dec and checks it against s; path names
// the value ("" for the arguments object).
func walk(dec *json.Decoder, s *jsonschema.Schema, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("invalid arguments: %v", err)
	}
	if s == nil {
		s = &jsonschema.Schema{}
	}
	want := s.Type
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			if want != "" && want != "array" {
				return typeError(path, want, "an array")
			}
			for i := 0; dec.More(); i++ {
				if err := walk(dec, s.Items, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
			_, err := dec.Token()
			return err
		}
		if want != "" && want != "object" {
			return typeError(path, want, "an object")
		}
		return walkObject(dec, s, path)
	case string:
		if want != "" && want != "string" {
			return typeError(path, want, "a string "+strconv.Quote(truncate(t, 40)))
		}
	case json.Number:
		switch want {
		case "", "number":
		case "integer":
			if _, err := strconv.ParseInt(t.String(), 10, 64); err != nil {
				return typeError(path, want, t.String())
			}
		default:
			return typeError(path, want, "the number "+t.String())
		}
	case bool:
		if want != "" && want != "boolean" {
			return typeError(path, want, strconv.FormatBool(t))
		}
	case nil:
		if want != "" {
			return typeError(path, want, "null")
		}
	}
	return nil
}

// walkObject checks the members of an object whose '{' was read.
func walkObject(dec *json.Decoder, s *jsonschema.Schema, path string) error {
	closed := s.Properties != nil || s.AdditionalProperties != nil
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("invalid arguments: %v", err)
		}
		key := tok.(string)
		field := join(path, key)
		if seen[key] {
			return &jobs.FieldError{Field: field, Problem: "is given twice; give each argument once"}
		}
		seen[key] = true
		prop, ok := s.Properties[key]
		if !ok && closed {
			return &jobs.FieldError{Field: field, Problem: unknownProblem(s, path, key)}
		}
		if err := walk(dec, prop, field); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("invalid arguments: %v", err)
	}
	for _, r := range s.Required {
		if !seen[r] {
			return &jobs.FieldError{Field: join(path, r), Problem: "is missing; it is required"}
		}
	}
	return nil
}

// unknownProblem says that key is not a name of s, and which names are;
// names are exact and case-sensitive.
func unknownProblem(s *jsonschema.Schema, path, key string) string {
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	slices.Sort(names)
	what := "an argument of this tool"
	if path != "" {
		what = "a field of " + path
	}
	msg := fmt.Sprintf("is not %s (names are exact and case-sensitive; known: %s)", what, strings.Join(names, ", "))
	for _, n := range names {
		if strings.EqualFold(n, key) && n != key {
			return msg + fmt.Sprintf("; did you mean %q?", n)
		}
	}
	return msg
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// typeError says what a value must be and what it was.
func typeError(path, want, got string) error {
	article := "a"
	if want == "integer" || want == "object" || want == "array" {
		article = "an"
	}
	if path == "" {
		return fmt.Errorf("invalid arguments: must be a JSON object of named arguments, got %s", got)
	}
	return &jobs.FieldError{Field: path, Problem: fmt.Sprintf("must be %s %s, got %s", article, want, got)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
