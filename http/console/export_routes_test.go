package console

// PostRoutes returns the path pattern of every POST route of s (s.Handler must not have run
// yet), for the test that tries each one without a session, with a stale one and without a
// CSRF token.
func PostRoutes(s *Server) (public, private []string) {
	for _, rt := range s.routes() {
		if rt.Method != "POST" {
			continue
		}
		if rt.Public {
			public = append(public, rt.Path)
		} else {
			private = append(private, rt.Path)
		}
	}
	return public, private
}
