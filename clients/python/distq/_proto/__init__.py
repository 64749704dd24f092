"""Generated protobuf and gRPC stubs of proto/distq/v1 (make proto). Do not edit."""
