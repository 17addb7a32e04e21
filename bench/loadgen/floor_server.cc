// The floor of gRPC C++ on this machine, for bench/serving_latency.py: a server that answers every unary
// call with one pre-serialized response (e.g. the PredictResponse bench/grpc_floor_server.py
// prebuilds), no model and no parsing. Set next to the grpc.aio floor, it shows how much of a
// request's time the transport itself needs when the server core is not Python -- the part of
// the overhead target a Python server cannot reach.
//
//   floor_server --port 9300 --response response.bin [--threads 2]
//
// Prints "floor_server on port N" once it listens; runs until killed. Built by bench/serving_latency.py
// with: g++ -O2 -std=c++17 floor_server.cc $(pkg-config --cflags --libs grpc++)
// (Debian: apt-get install libgrpc++-dev pkg-config).

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include "tool_args.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using bench_tools::Flag;
using bench_tools::ReadMessage;

// One unary call: requested -> request read -> answer written and finished -> deleted.
class Call {
 public:
  Call(grpc::AsyncGenericService* service, grpc::ServerCompletionQueue* cq, const grpc::ByteBuffer* response)
      : service_(service), cq_(cq), response_(response), stream_(&context_) {
    service_->RequestCall(&context_, &stream_, cq_, cq_, this);
  }

  void Proceed(bool ok) {
    switch (state_) {
      case State::kRequested:
        if (!ok) {  // the server is shutting down
          delete this;
          return;
        }
        new Call(service_, cq_, response_);  // the next call waits while this one is answered
        state_ = State::kReading;
        stream_.Read(&request_, this);
        return;
      case State::kReading:
        state_ = State::kFinishing;
        stream_.WriteAndFinish(*response_, grpc::WriteOptions(), grpc::Status::OK, this);
        return;
      case State::kFinishing:
        delete this;
        return;
    }
  }

 private:
  enum class State { kRequested, kReading, kFinishing };
  grpc::AsyncGenericService* service_;
  grpc::ServerCompletionQueue* cq_;
  const grpc::ByteBuffer* response_;
  grpc::GenericServerContext context_;
  grpc::GenericServerAsyncReaderWriter stream_;
  grpc::ByteBuffer request_;
  State state_ = State::kRequested;
};

}  // namespace

int main(int argc, char** argv) {
  const int port = std::atoi(Flag(argc, argv, "port", "0").c_str());
  const std::string response_path = Flag(argc, argv, "response", "");
  const int threads = std::atoi(Flag(argc, argv, "threads", "2").c_str());
  if (response_path.empty() || threads < 1) {
    std::fprintf(stderr, "usage: floor_server --response FILE [--port N] [--threads N]\n");
    return 2;
  }
  const grpc::ByteBuffer response = ReadMessage(response_path);

  grpc::AsyncGenericService service;
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("0.0.0.0:" + std::to_string(port), grpc::InsecureServerCredentials(), &bound);
  builder.RegisterAsyncGenericService(&service);
  std::unique_ptr<grpc::ServerCompletionQueue> cq = builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0) {
    std::fprintf(stderr, "cannot bind port %d\n", port);
    return 1;
  }
  for (int i = 0; i < threads; ++i) new Call(&service, cq.get(), &response);
  std::printf("floor_server on port %d\n", bound);
  std::fflush(stdout);

  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&cq] {
      void* tag = nullptr;
      bool ok = false;
      while (cq->Next(&tag, &ok)) static_cast<Call*>(tag)->Proceed(ok);
    });
  }
  for (auto& worker : workers) worker.join();
  return 0;
}
