package http

import (
	_ "embed"
	"net/http"

	"github.com/timebox-dev/timebox"
)

// openAPI is the hand-written OpenAPI 3.0 description of every route.
//
//go:embed openapi.json
var openAPI []byte

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request, _ *timebox.User) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(openAPI)
	return nil
}
