// Authentication with the shared authkey.
//
// The master and every client share a secret key (the "authkey", as in
// Python's multiprocessing.managers.BaseManager). The key never crosses the
// wire: both sides prove they hold it by computing HMAC-SHA256 over fresh
// random nonces, the way multiprocessing's deliver_challenge/answer_challenge
// do, and each side checks the other's proof. A captured exchange is useless
// to an eavesdropper because every nonce is used once.
//
// # The key
//
// The HMAC key is bytes. Read from a key file (the programs' -authkey-file,
// or the file named by DISTQ_AUTHKEY_FILE), it is the file's contents with
// exactly one trailing "\n" or "\r\n" removed, and nothing else trimmed or
// decoded: a key file written by `head -c 32 /dev/urandom | base64` holds a
// 44-character ASCII key, used as that text. From DISTQ_AUTHKEY, it is the
// variable's value, byte for byte. An empty key is refused.
//
// # Handshake (two unary calls on the Auth service, no metadata needed)
//
//  1. The client draws 32 random bytes, client_nonce, and calls
//     AuthService.Challenge{client_nonce}. The master draws 32 random bytes,
//     server_nonce, remembers it for 30 seconds, and answers
//     {server_nonce, server_proof} where
//
//        server_proof = HMAC-SHA256(key, "distq-v1 server\n" || client_nonce || server_nonce)
//
//  2. The client computes the same value and compares it in constant time. If
//     it differs, the peer does not hold the key: the client must stop and
//     send nothing more (this is what makes the scheme mutual).
//  3. The client calls AuthService.Login{server_nonce, client_proof} where
//
//        client_proof = HMAC-SHA256(key, "distq-v1 client\n" || server_nonce || client_nonce)
//
//     The master accepts each server_nonce once, only within its 30 seconds,
//     and only with a correct proof; otherwise it answers UNAUTHENTICATED
//     with the message "distq: authentication failed". On success it answers
//     {session_id}. Both sides then derive the session key, which is never
//     sent either:
//
//        session_key = HMAC-SHA256(key, "distq-v1 session\n" || client_nonce || server_nonce)
//
// "||" is concatenation of raw bytes; the labels are ASCII with a single
// trailing newline byte (0x0A); nonces are the raw 32 bytes, not hex.
//
// # Every other call (QueueService)
//
// Each call carries three gRPC metadata entries (ASCII, lower-case keys):
//
//	distq-session: the session_id from Login, as returned (lowercase hex)
//	distq-seq:     the call's sequence number on the session, in decimal
//	               (no sign, no leading zero): a counter that starts at 1
//	               and that the client increments for every call it signs,
//	               never reusing a value
//	distq-mac:     lowercase hex of HMAC-SHA256(session_key,
//	               "distq-v1 call\n" || full_method || "\n" || seq)
//
// where full_method is the gRPC method path, e.g.
// "/distq.v1.QueueService/Consume", and seq is the same decimal string as in
// distq-seq. A streaming call is checked once, when it opens. The master
// checks every call when its headers arrive, before any of its message is
// read.
//
// Replays. Calls may reach the master in any order: gRPC libraries sign a
// call before it waits for a free HTTP/2 stream, and many calls run at
// once. The master remembers every seq it has accepted on a session and
// refuses
//
//   - a seq it has already accepted (a captured call sent again), and
//   - a seq at or below the highest seq it had accepted on that session by
//     the time of the rotation before the last one; rotations are at least
//     60 seconds apart, so such a call was signed more than 60 seconds
//     before it arrived;
//   - a seq more than about 1,048,576 (2^20) below the highest it has
//     accepted on the session (fewer when the master's records of used
//     seqs, 64 MiB for all sessions together, run short: then only the
//     session that needs more moves its floor up).
//
// So a call that arrives within 60 seconds of being signed, and within
// 2^20 calls of the session's latest, is never refused, whatever the order
// and the concurrency. These refusals get UNAUTHENTICATED with a message that
// starts with "distq: replay". The call did not run; a client that sees this
// for its own call signs it again with a new seq and sends it again.
//
// Refusals, by message prefix (all UNAUTHENTICATED):
//
//	"distq: authentication failed"  Login only: the proof was wrong (a
//	                                wrong key) or the server_nonce unknown,
//	                                used or expired. Final.
//	"distq: session"                unknown or expired session, for
//	                                example after a master restart: run
//	                                the handshake again and retry.
//	"distq: replay"                 see above: sign again and retry.
//	"distq: call refused"           missing, duplicated or malformed
//	                                metadata, or a wrong MAC: a bug in the
//	                                client, not a wrong key. Final.
//
// Sessions expire after 10 minutes without a call; an open stream keeps its
// session alive.
//
// # Connections and limits
//
// A connection on which no Login succeeds and no call with valid session
// credentials arrives within the master's -auth-timeout (10 seconds by
// default) is closed; so is the oldest such connection when too many wait
// (-max-unauth-conns; the oldest of the host with the most such
// connections). A client should log in, or make its first call, as soon as
// it connects. Health and reflection calls do not count, and a connection
// not yet authenticated may have at most 16 calls open (the handshake,
// health, reflection): more get RESOURCE_EXHAUSTED. A call's headers may
// take at most 16 KiB. Past its
// limits on open streams (-max-streams) and on waiting calls (-max-waits),
// per connection and per session, the master answers RESOURCE_EXHAUSTED
// with a message that names the limit.
//
// The MAC authenticates the opening of each call, not the bytes that follow:
// for confidentiality and integrity of payloads, run the master with TLS.

// Code generated by protoc-gen-go-grpc. DO NOT EDIT.
// versions:
// - protoc-gen-go-grpc v1.6.2
// - protoc             (unknown)
// source: distq/v1/auth.proto

package distqv1

import (
	context "context"
	grpc "google.golang.org/grpc"
	codes "google.golang.org/grpc/codes"
	status "google.golang.org/grpc/status"
)

// This is a compile-time assertion to ensure that this generated file
// is compatible with the grpc package it is being compiled against.
// Requires gRPC-Go v1.64.0 or later.
const _ = grpc.SupportPackageIsVersion9

const (
	AuthService_Challenge_FullMethodName = "/distq.v1.AuthService/Challenge"
	AuthService_Login_FullMethodName     = "/distq.v1.AuthService/Login"
)

// AuthServiceClient is the client API for AuthService service.
//
// For semantics around ctx use and closing/ending streaming RPCs, please refer to https://pkg.go.dev/google.golang.org/grpc/?tab=doc#ClientConn.NewStream.
//
// Auth proves possession of the shared authkey in both directions. It is the
// only service that can be called without a session.
type AuthServiceClient interface {
	// Challenge starts a handshake; the master proves it holds the key.
	Challenge(ctx context.Context, in *ChallengeRequest, opts ...grpc.CallOption) (*ChallengeResponse, error)
	// Login finishes a handshake; the client proves it holds the key.
	Login(ctx context.Context, in *LoginRequest, opts ...grpc.CallOption) (*LoginResponse, error)
}

type authServiceClient struct {
	cc grpc.ClientConnInterface
}

func NewAuthServiceClient(cc grpc.ClientConnInterface) AuthServiceClient {
	return &authServiceClient{cc}
}

func (c *authServiceClient) Challenge(ctx context.Context, in *ChallengeRequest, opts ...grpc.CallOption) (*ChallengeResponse, error) {
	cOpts := append([]grpc.CallOption{grpc.StaticMethod()}, opts...)
	out := new(ChallengeResponse)
	err := c.cc.Invoke(ctx, AuthService_Challenge_FullMethodName, in, out, cOpts...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *authServiceClient) Login(ctx context.Context, in *LoginRequest, opts ...grpc.CallOption) (*LoginResponse, error) {
	cOpts := append([]grpc.CallOption{grpc.StaticMethod()}, opts...)
	out := new(LoginResponse)
	err := c.cc.Invoke(ctx, AuthService_Login_FullMethodName, in, out, cOpts...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AuthServiceServer is the server API for AuthService service.
// All implementations must embed UnimplementedAuthServiceServer
// for forward compatibility.
//
// Auth proves possession of the shared authkey in both directions. It is the
// only service that can be called without a session.
type AuthServiceServer interface {
	// Challenge starts a handshake; the master proves it holds the key.
	Challenge(context.Context, *ChallengeRequest) (*ChallengeResponse, error)
	// Login finishes a handshake; the client proves it holds the key.
	Login(context.Context, *LoginRequest) (*LoginResponse, error)
	mustEmbedUnimplementedAuthServiceServer()
}

// UnimplementedAuthServiceServer must be embedded to have
// forward compatible implementations.
//
// NOTE: this should be embedded by value instead of pointer to avoid a nil
// pointer dereference when methods are called.
type UnimplementedAuthServiceServer struct{}

func (UnimplementedAuthServiceServer) Challenge(context.Context, *ChallengeRequest) (*ChallengeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method Challenge not implemented")
}
func (UnimplementedAuthServiceServer) Login(context.Context, *LoginRequest) (*LoginResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method Login not implemented")
}
func (UnimplementedAuthServiceServer) mustEmbedUnimplementedAuthServiceServer() {}
func (UnimplementedAuthServiceServer) testEmbeddedByValue()                     {}

// UnsafeAuthServiceServer may be embedded to opt out of forward compatibility for this service.
// Use of this interface is not recommended, as added methods to AuthServiceServer will
// result in compilation errors.
type UnsafeAuthServiceServer interface {
	mustEmbedUnimplementedAuthServiceServer()
}

func RegisterAuthServiceServer(s grpc.ServiceRegistrar, srv AuthServiceServer) {
	// If the following call panics, it indicates UnimplementedAuthServiceServer was
	// embedded by pointer and is nil.  This will cause panics if an
	// unimplemented method is ever invoked, so we test this at initialization
	// time to prevent it from happening at runtime later due to I/O.
	if t, ok := srv.(interface{ testEmbeddedByValue() }); ok {
		t.testEmbeddedByValue()
	}
	s.RegisterService(&AuthService_ServiceDesc, srv)
}

func _AuthService_Challenge_Handler(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(ChallengeRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(AuthServiceServer).Challenge(ctx, in)
	}
	info := &grpc.UnaryServerInfo{
		Server:     srv,
		FullMethod: AuthService_Challenge_FullMethodName,
	}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(AuthServiceServer).Challenge(ctx, req.(*ChallengeRequest))
	}
	return interceptor(ctx, in, info, handler)
}

func _AuthService_Login_Handler(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(LoginRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(AuthServiceServer).Login(ctx, in)
	}
	info := &grpc.UnaryServerInfo{
		Server:     srv,
		FullMethod: AuthService_Login_FullMethodName,
	}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(AuthServiceServer).Login(ctx, req.(*LoginRequest))
	}
	return interceptor(ctx, in, info, handler)
}

// AuthService_ServiceDesc is the grpc.ServiceDesc for AuthService service.
// It's only intended for direct use with grpc.RegisterService,
// and not to be introspected or modified (even as a copy)
var AuthService_ServiceDesc = grpc.ServiceDesc{
	ServiceName: "distq.v1.AuthService",
	HandlerType: (*AuthServiceServer)(nil),
	Methods: []grpc.MethodDesc{
		{
			MethodName: "Challenge",
			Handler:    _AuthService_Challenge_Handler,
		},
		{
			MethodName: "Login",
			Handler:    _AuthService_Login_Handler,
		},
	},
	Streams:  []grpc.StreamDesc{},
	Metadata: "distq/v1/auth.proto",
}
