package console

func (s *Server) liveRoutes() []route { return nil }
