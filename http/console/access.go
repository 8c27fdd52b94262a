package console

import "net/http"

// accessRoutes are the "My access" page.
func (s *Server) accessRoutes() []route {
	return []route{{Method: "GET", Path: "/{$}", h: s.handleAccess}}
}

func (s *Server) handleAccess(w http.ResponseWriter, r *http.Request, c *call) error {
	s.render(w, r, c, http.StatusOK, "access", "My access", nil)
	return nil
}
