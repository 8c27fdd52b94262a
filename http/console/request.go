package console

func (s *Server) requestRoutes() []route { return nil }
