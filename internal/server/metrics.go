package server

import "google.golang.org/grpc"

// GetServiceInfo describes the services the server registered, so that
// gRPC metrics can list every method before its first call
// (reflection.ServiceInfoProvider).
func (s *Server) GetServiceInfo() map[string]grpc.ServiceInfo { return s.grpc.GetServiceInfo() }
