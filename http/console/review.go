package console

func (s *Server) reviewRoutes() []route { return nil }
