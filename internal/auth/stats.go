package auth

// Sessions is how many sessions the server holds now (logins not yet
// expired, evicted or forgotten), for metrics. It takes the session
// table's lock briefly.
func (s *Server) Sessions() int { return s.sessions.len() }
