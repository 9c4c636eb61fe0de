"""gRPC transport: servicers that translate between protos and the domain, and error mapping."""
