package integration

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	pb "github.com/distq/distq/proto/distq/v1"
)

// What the README shows with grpcurl: before any login, server reflection
// lists the services and describes them, while a queue or admin call
// without a session is refused.
func TestReflectionWithoutSession(t *testing.T) {
	key := writeKey(t, testKey)
	_, addr := startMaster(t, key)
	ctx := ctxTimeout(t, time.Minute)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *rpb.ServerReflectionRequest) *rpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var names []string
	for _, s := range ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}).GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"distq.v1.AdminService", "distq.v1.AuthService", "distq.v1.QueueService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v; %s missing", names, want)
		}
	}
	for _, sym := range []string{"distq.v1.QueueService", "distq.v1.AdminService", "distq.v1.Delivery"} {
		resp := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: sym}})
		if len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
			t.Errorf("no file describes %s: %v", sym, resp.GetErrorResponse())
		}
	}
	if _, err := pb.NewQueueServiceClient(conn).Stats(ctx, &pb.StatsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Stats without a session: %v; want UNAUTHENTICATED", err)
	}
	if _, err := pb.NewAdminServiceClient(conn).ListConsumers(ctx, &pb.ListConsumersRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ListConsumers without a session: %v; want UNAUTHENTICATED", err)
	}
}
