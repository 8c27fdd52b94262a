package console

func (s *Server) auditRoutes() []route { return nil }
