package console

func (s *Server) adminRoutes() []route { return nil }
