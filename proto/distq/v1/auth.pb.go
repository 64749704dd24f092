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

// Code generated by protoc-gen-go. DO NOT EDIT.
// versions:
// 	protoc-gen-go v1.36.12
// 	protoc        (unknown)
// source: distq/v1/auth.proto

package distqv1

import (
	protoreflect "google.golang.org/protobuf/reflect/protoreflect"
	protoimpl "google.golang.org/protobuf/runtime/protoimpl"
	reflect "reflect"
	sync "sync"
	unsafe "unsafe"
)

const (
	// Verify that this generated code is sufficiently up-to-date.
	_ = protoimpl.EnforceVersion(20 - protoimpl.MinVersion)
	// Verify that runtime/protoimpl is sufficiently up-to-date.
	_ = protoimpl.EnforceVersion(protoimpl.MaxVersion - 20)
)

type ChallengeRequest struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// Exactly 32 random bytes from a cryptographic source.
	ClientNonce   []byte `protobuf:"bytes,1,opt,name=client_nonce,json=clientNonce,proto3" json:"client_nonce,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *ChallengeRequest) Reset() {
	*x = ChallengeRequest{}
	mi := &file_distq_v1_auth_proto_msgTypes[0]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *ChallengeRequest) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*ChallengeRequest) ProtoMessage() {}

func (x *ChallengeRequest) ProtoReflect() protoreflect.Message {
	mi := &file_distq_v1_auth_proto_msgTypes[0]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use ChallengeRequest.ProtoReflect.Descriptor instead.
func (*ChallengeRequest) Descriptor() ([]byte, []int) {
	return file_distq_v1_auth_proto_rawDescGZIP(), []int{0}
}

func (x *ChallengeRequest) GetClientNonce() []byte {
	if x != nil {
		return x.ClientNonce
	}
	return nil
}

type ChallengeResponse struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// Exactly 32 random bytes, valid for one Login within 30 seconds.
	ServerNonce []byte `protobuf:"bytes,1,opt,name=server_nonce,json=serverNonce,proto3" json:"server_nonce,omitempty"`
	// HMAC-SHA256(key, "distq-v1 server\n" || client_nonce || server_nonce).
	ServerProof   []byte `protobuf:"bytes,2,opt,name=server_proof,json=serverProof,proto3" json:"server_proof,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *ChallengeResponse) Reset() {
	*x = ChallengeResponse{}
	mi := &file_distq_v1_auth_proto_msgTypes[1]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *ChallengeResponse) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*ChallengeResponse) ProtoMessage() {}

func (x *ChallengeResponse) ProtoReflect() protoreflect.Message {
	mi := &file_distq_v1_auth_proto_msgTypes[1]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use ChallengeResponse.ProtoReflect.Descriptor instead.
func (*ChallengeResponse) Descriptor() ([]byte, []int) {
	return file_distq_v1_auth_proto_rawDescGZIP(), []int{1}
}

func (x *ChallengeResponse) GetServerNonce() []byte {
	if x != nil {
		return x.ServerNonce
	}
	return nil
}

func (x *ChallengeResponse) GetServerProof() []byte {
	if x != nil {
		return x.ServerProof
	}
	return nil
}

type LoginRequest struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// The server_nonce from the ChallengeResponse.
	ServerNonce []byte `protobuf:"bytes,1,opt,name=server_nonce,json=serverNonce,proto3" json:"server_nonce,omitempty"`
	// HMAC-SHA256(key, "distq-v1 client\n" || server_nonce || client_nonce).
	ClientProof   []byte `protobuf:"bytes,2,opt,name=client_proof,json=clientProof,proto3" json:"client_proof,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *LoginRequest) Reset() {
	*x = LoginRequest{}
	mi := &file_distq_v1_auth_proto_msgTypes[2]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *LoginRequest) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*LoginRequest) ProtoMessage() {}

func (x *LoginRequest) ProtoReflect() protoreflect.Message {
	mi := &file_distq_v1_auth_proto_msgTypes[2]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use LoginRequest.ProtoReflect.Descriptor instead.
func (*LoginRequest) Descriptor() ([]byte, []int) {
	return file_distq_v1_auth_proto_rawDescGZIP(), []int{2}
}

func (x *LoginRequest) GetServerNonce() []byte {
	if x != nil {
		return x.ServerNonce
	}
	return nil
}

func (x *LoginRequest) GetClientProof() []byte {
	if x != nil {
		return x.ClientProof
	}
	return nil
}

type LoginResponse struct {
	state protoimpl.MessageState `protogen:"open.v1"`
	// Lowercase hex; send it as the distq-session metadata of every call.
	SessionId     string `protobuf:"bytes,1,opt,name=session_id,json=sessionId,proto3" json:"session_id,omitempty"`
	unknownFields protoimpl.UnknownFields
	sizeCache     protoimpl.SizeCache
}

func (x *LoginResponse) Reset() {
	*x = LoginResponse{}
	mi := &file_distq_v1_auth_proto_msgTypes[3]
	ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
	ms.StoreMessageInfo(mi)
}

func (x *LoginResponse) String() string {
	return protoimpl.X.MessageStringOf(x)
}

func (*LoginResponse) ProtoMessage() {}

func (x *LoginResponse) ProtoReflect() protoreflect.Message {
	mi := &file_distq_v1_auth_proto_msgTypes[3]
	if x != nil {
		ms := protoimpl.X.MessageStateOf(protoimpl.Pointer(x))
		if ms.LoadMessageInfo() == nil {
			ms.StoreMessageInfo(mi)
		}
		return ms
	}
	return mi.MessageOf(x)
}

// Deprecated: Use LoginResponse.ProtoReflect.Descriptor instead.
func (*LoginResponse) Descriptor() ([]byte, []int) {
	return file_distq_v1_auth_proto_rawDescGZIP(), []int{3}
}

func (x *LoginResponse) GetSessionId() string {
	if x != nil {
		return x.SessionId
	}
	return ""
}

var File_distq_v1_auth_proto protoreflect.FileDescriptor

const file_distq_v1_auth_proto_rawDesc = "" +
	"\n" +
	"\x13distq/v1/auth.proto\x12\bdistq.v1\"5\n" +
	"\x10ChallengeRequest\x12!\n" +
	"\fclient_nonce\x18\x01 \x01(\fR\vclientNonce\"Y\n" +
	"\x11ChallengeResponse\x12!\n" +
	"\fserver_nonce\x18\x01 \x01(\fR\vserverNonce\x12!\n" +
	"\fserver_proof\x18\x02 \x01(\fR\vserverProof\"T\n" +
	"\fLoginRequest\x12!\n" +
	"\fserver_nonce\x18\x01 \x01(\fR\vserverNonce\x12!\n" +
	"\fclient_proof\x18\x02 \x01(\fR\vclientProof\".\n" +
	"\rLoginResponse\x12\x1d\n" +
	"\n" +
	"session_id\x18\x01 \x01(\tR\tsessionId2\x8d\x01\n" +
	"\vAuthService\x12D\n" +
	"\tChallenge\x12\x1a.distq.v1.ChallengeRequest\x1a\x1b.distq.v1.ChallengeResponse\x128\n" +
	"\x05Login\x12\x16.distq.v1.LoginRequest\x1a\x17.distq.v1.LoginResponseB/Z-github.com/distq/distq/proto/distq/v1;distqv1b\x06proto3"

var (
	file_distq_v1_auth_proto_rawDescOnce sync.Once
	file_distq_v1_auth_proto_rawDescData []byte
)

func file_distq_v1_auth_proto_rawDescGZIP() []byte {
	file_distq_v1_auth_proto_rawDescOnce.Do(func() {
		file_distq_v1_auth_proto_rawDescData = protoimpl.X.CompressGZIP(unsafe.Slice(unsafe.StringData(file_distq_v1_auth_proto_rawDesc), len(file_distq_v1_auth_proto_rawDesc)))
	})
	return file_distq_v1_auth_proto_rawDescData
}

var file_distq_v1_auth_proto_msgTypes = make([]protoimpl.MessageInfo, 4)
var file_distq_v1_auth_proto_goTypes = []any{
	(*ChallengeRequest)(nil),  // 0: distq.v1.ChallengeRequest
	(*ChallengeResponse)(nil), // 1: distq.v1.ChallengeResponse
	(*LoginRequest)(nil),      // 2: distq.v1.LoginRequest
	(*LoginResponse)(nil),     // 3: distq.v1.LoginResponse
}
var file_distq_v1_auth_proto_depIdxs = []int32{
	0, // 0: distq.v1.AuthService.Challenge:input_type -> distq.v1.ChallengeRequest
	2, // 1: distq.v1.AuthService.Login:input_type -> distq.v1.LoginRequest
	1, // 2: distq.v1.AuthService.Challenge:output_type -> distq.v1.ChallengeResponse
	3, // 3: distq.v1.AuthService.Login:output_type -> distq.v1.LoginResponse
	2, // [2:4] is the sub-list for method output_type
	0, // [0:2] is the sub-list for method input_type
	0, // [0:0] is the sub-list for extension type_name
	0, // [0:0] is the sub-list for extension extendee
	0, // [0:0] is the sub-list for field type_name
}

func init() { file_distq_v1_auth_proto_init() }
func file_distq_v1_auth_proto_init() {
	if File_distq_v1_auth_proto != nil {
		return
	}
	type x struct{}
	out := protoimpl.TypeBuilder{
		File: protoimpl.DescBuilder{
			GoPackagePath: reflect.TypeOf(x{}).PkgPath(),
			RawDescriptor: unsafe.Slice(unsafe.StringData(file_distq_v1_auth_proto_rawDesc), len(file_distq_v1_auth_proto_rawDesc)),
			NumEnums:      0,
			NumMessages:   4,
			NumExtensions: 0,
			NumServices:   1,
		},
		GoTypes:           file_distq_v1_auth_proto_goTypes,
		DependencyIndexes: file_distq_v1_auth_proto_depIdxs,
		MessageInfos:      file_distq_v1_auth_proto_msgTypes,
	}.Build()
	File_distq_v1_auth_proto = out.File
	file_distq_v1_auth_proto_goTypes = nil
	file_distq_v1_auth_proto_depIdxs = nil
}
