package console

func (s *Server) timelineRoutes() []route { return nil }
