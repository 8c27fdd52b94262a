package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/timebox-dev/timebox"
)

// maxBodyBytes bounds a request body.
const maxBodyBytes = 64 << 10

// decodeJSON reads r's body, at most maxBodyBytes of one JSON object with only known fields,
// into v, a pointer to a struct. It refuses what encoding/json would take and quietly change:
// bytes that are not UTF-8 and unpaired surrogate escapes (both become U+FFFD), a member
// given twice (the last one wins) and a name that matches a field only when case is ignored.
// Errors are EINVALID and say what is wrong, naming the field when there is one.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return timebox.Errorf(timebox.EINVALID, "the request body must be JSON (Content-Type: application/json), not %s", quote(ct))
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return bodyError(err, nil, nil)
	} else if err != nil {
		return timebox.WrapError(timebox.EINVALID, err, "the request body could not be read")
	}
	if !utf8.Valid(b) {
		return timebox.Errorf(timebox.EINVALID, "the request body is not valid UTF-8 (at byte %d)", invalidUTF8(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err, b, v)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return bodyError(err, b, v)
		}
		return timebox.Errorf(timebox.EINVALID, "the request body has data after its JSON value")
	}
	if i := unpairedSurrogate(b); i >= 0 {
		return timebox.Errorf(timebox.EINVALID, "the request body has an unpaired UTF-16 surrogate %s (at byte %d): text must be valid Unicode", b[i:i+6], i)
	}
	return checkMembers(b, v)
}

// bodyError turns a JSON decoding error of body b into v into an EINVALID error naming the
// problem.
func bodyError(err error, b []byte, v any) error {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		timeErr   *time.ParseError
	)
	switch {
	case errors.As(err, &maxErr):
		return timebox.Errorf(timebox.EINVALID, "the request body is larger than %d KiB", maxBodyBytes>>10)
	case errors.Is(err, io.EOF):
		return timebox.Errorf(timebox.EINVALID, "the request body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return timebox.Errorf(timebox.EINVALID, "the request body is truncated JSON")
	case errors.As(err, &syntaxErr):
		return timebox.Errorf(timebox.EINVALID, "the request body is not valid JSON (at byte %d)", syntaxErr.Offset)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return timebox.Errorf(timebox.EINVALID, "field %s must be %s, not %s", quote(typeErr.Field), jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &typeErr):
		return timebox.Errorf(timebox.EINVALID, "the request body must be a JSON object, not %s", typeErr.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if s, err := strconv.Unquote(name); err == nil {
			name = quote(s)
		}
		return timebox.Errorf(timebox.EINVALID, "unknown field %s in the request body", name)
	}
	// What is left is a field's own decoding error (a time's), which does not say which field.
	name, t := badField(b, v)
	isTime := t == reflect.TypeFor[time.Time]() || t == reflect.TypeFor[*time.Time]()
	switch {
	case isTime && errors.As(err, &timeErr):
		return timebox.Errorf(timebox.EINVALID, "invalid time %s in field %s: use RFC 3339, such as 2026-01-02T15:04:05Z", quote(timeErr.Value), quote(name))
	case isTime:
		return timebox.Errorf(timebox.EINVALID, "field %s must be an RFC 3339 time in a string, such as \"2026-01-02T15:04:05Z\"", quote(name))
	case name != "":
		return timebox.Errorf(timebox.EINVALID, "field %s has an invalid value", quote(name))
	case errors.As(err, &timeErr):
		return timebox.Errorf(timebox.EINVALID, "invalid time %s: use RFC 3339, such as 2026-01-02T15:04:05Z", quote(timeErr.Value))
	}
	return timebox.Errorf(timebox.EINVALID, "the request body is not valid JSON")
}

// badField returns the first field of the struct v points to (in declaration order) whose
// member in the JSON object b does not decode on its own, and the field's type.
func badField(b []byte, v any) (string, reflect.Type) {
	var members map[string]json.RawMessage
	if json.Unmarshal(b, &members) != nil {
		return "", nil
	}
	for _, f := range jsonFields(v) {
		if raw, ok := members[f.name]; ok && json.Unmarshal(raw, reflect.New(f.typ).Interface()) != nil {
			return f.name, f.typ
		}
	}
	return "", nil
}

// jsonField is a struct field as encoding/json names it.
type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields returns the fields that encoding/json decodes into the struct v points to, or
// nil when v is not a pointer to a struct.
func jsonFields(v any) []jsonField {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	return structFields(t.Elem())
}

func structFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			out = append(out, structFields(f.Type)...)
		case !f.IsExported():
		case name == "":
			out = append(out, jsonField{f.Name, f.Type})
		default:
			out = append(out, jsonField{name, f.Type})
		}
	}
	return out
}

// checkMembers refuses a body b that is not an object (null decodes into nothing), an object
// anywhere in it that names a member twice, and a top-level member whose name is not exactly
// that of a field of v. b must be valid JSON.
func checkMembers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return bodyError(err, nil, nil)
	} else if tok == nil {
		return timebox.Errorf(timebox.EINVALID, "the request body must be a JSON object, not null")
	} else if tok != json.Delim('{') {
		return timebox.Errorf(timebox.EINVALID, "the request body must be a JSON object")
	}
	known := map[string]bool{}
	for _, f := range jsonFields(v) {
		known[f.name] = true
	}
	return checkObject(dec, known)
}

// checkObject reads the members of the object whose '{' dec just read, up to its '}'.
// known, when not nil, are the names it may have.
func checkObject(dec *json.Decoder, known map[string]bool) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bodyError(err, nil, nil)
		}
		name, _ := tok.(string)
		switch {
		case seen[name]:
			return timebox.Errorf(timebox.EINVALID, "field %s appears twice in the request body", quote(name))
		case known != nil && !known[name]:
			return timebox.Errorf(timebox.EINVALID, "unknown field %s in the request body", quote(name))
		}
		seen[name] = true
		if err := checkValue(dec); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return bodyError(err, nil, nil)
	}
	return nil
}

// checkValue reads one value, checking the objects in it.
func checkValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return bodyError(err, nil, nil)
	}
	switch tok {
	case json.Delim('{'):
		return checkObject(dec, nil)
	case json.Delim('['):
		for dec.More() {
			if err := checkValue(dec); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return bodyError(err, nil, nil)
		}
	}
	return nil
}

// invalidUTF8 returns the offset of the first byte of b that is not part of valid UTF-8.
func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// unpairedSurrogate returns the offset of the first \uXXXX escape in the JSON text b that is
// half of a UTF-16 surrogate pair without its other half, or -1. b must be valid JSON.
func unpairedSurrogate(b []byte) int {
	inString := false
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '"':
			inString = !inString
		case !inString || b[i] != '\\':
		case b[i+1] != 'u':
			i++ // a one-letter escape, such as \" or \\
		default:
			switch r := hex4(b[i+2 : i+6]); {
			case r >= 0xdc00 && r <= 0xdfff:
				return i // a low half first
			case r >= 0xd800 && r <= 0xdbff:
				if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
					return i
				} else if lo := hex4(b[i+8 : i+12]); lo < 0xdc00 || lo > 0xdfff {
					return i
				}
				i += 6
			}
			i += 5
		}
	}
	return -1
}

// hex4 returns the value of four hexadecimal digits.
func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 16)
	return rune(n)
}

// jsonKind names a Go kind the way a JSON user would.
func jsonKind(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"), strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case kind == "slice", kind == "array":
		return "an array"
	}
	return "an object"
}
