package console

import "time"

// SetLiveLimits changes s's event streams' timings and limits (zero keeps a default), for
// tests: call it before the first stream.
func SetLiveLimits(s *Server, heartbeat, recheck time.Duration, perSession, max int) {
	s.live.heartbeat, s.live.recheck, s.live.perSession, s.live.max = heartbeat, recheck, perSession, max
}
