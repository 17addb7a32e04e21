// A small closed-loop gRPC load generator (ghz-style) for bench/serving_latency.py.
//
// Sends one pre-serialized request (e.g. a tensorflow.serving.PredictRequest written by the
// bench) to a unary method, from N concurrent clients. Each client has its own channel (its own
// TCP connection) and keeps exactly one call in flight: when an answer arrives it sends the
// next. All clients are driven from one completion queue by one thread, so the generator itself
// costs little CPU next to the server it measures. Prints one JSON object.
//
//   loadgen --target localhost:8500 --method /tensorflow.serving.PredictionService/Predict \
//           --request predict.bin --clients 32 --seconds 10 [--warmup 1]
//
// Built by bench/serving_latency.py with: g++ -O2 -std=c++17 loadgen.cc $(pkg-config --cflags --libs grpc++)
// (Debian: apt-get install libgrpc++-dev pkg-config).

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "tool_args.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using Clock = std::chrono::steady_clock;

namespace {

using bench_tools::Flag;
using bench_tools::ReadMessage;

struct Call {
  int client = 0;
  Clock::time_point started;
  grpc::ClientContext context;
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(q * (v.size() - 1) + 0.5);
  return v[std::min(k, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  const std::string target = Flag(argc, argv, "target", "localhost:8500");
  const std::string method = Flag(argc, argv, "method", "/tensorflow.serving.PredictionService/Predict");
  const std::string request_path = Flag(argc, argv, "request", "");
  const int clients = std::atoi(Flag(argc, argv, "clients", "1").c_str());
  const double seconds = std::atof(Flag(argc, argv, "seconds", "10").c_str());
  const double warmup = std::atof(Flag(argc, argv, "warmup", "1").c_str());
  if (request_path.empty() || clients < 1) {
    std::fprintf(stderr, "usage: loadgen --request FILE [--target H:P] [--method M] [--clients N] [--seconds S]\n");
    return 2;
  }
  const grpc::ByteBuffer request = ReadMessage(request_path);

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < clients; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one connection per client
    args.SetInt("embedpipe.loadgen.client", i);          // distinct args: no channel sharing
    channels.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
    stubs.push_back(std::make_unique<grpc::GenericStub>(channels.back()));
  }
  for (int i = 0; i < clients; ++i) {  // every client connected before the clock starts
    if (!channels[i]->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
      std::fprintf(stderr, "loadgen: client %d could not connect to %s\n", i, target.c_str());
      return 1;
    }
  }
  grpc::CompletionQueue cq;
  auto start_call = [&](int client) {
    auto* call = new Call;
    call->client = client;
    call->started = Clock::now();
    call->reader = stubs[client]->PrepareUnaryCall(&call->context, method, request, &cq);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
  };

  const auto t0 = Clock::now();
  const auto measure_from = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup));
  const auto measure_to = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (int i = 0; i < clients; ++i) start_call(i);

  std::vector<double> latencies_ms;
  long errors = 0, calls = 0;
  std::string first_error;
  int in_flight = clients;
  void* tag;
  bool ok;
  while (in_flight > 0 && cq.Next(&tag, &ok)) {
    auto* call = static_cast<Call*>(tag);
    const auto now = Clock::now();
    const bool measured = call->started >= measure_from && now <= measure_to;
    if (!ok || !call->status.ok()) {
      if (measured) ++errors;
      if (first_error.empty()) first_error = call->status.error_message();
    } else if (measured) {
      ++calls;
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - call->started).count());
    }
    const int client = call->client;
    delete call;
    if (now < measure_to) {
      start_call(client);
    } else {
      --in_flight;
    }
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  std::ostringstream out;
  out << "{\"clients\": " << clients << ", \"seconds\": " << seconds << ", \"calls\": " << calls
      << ", \"errors\": " << errors << ", \"per_s\": " << calls / seconds
      << ", \"p50_ms\": " << Percentile(latencies_ms, 0.50) << ", \"p99_ms\": " << Percentile(latencies_ms, 0.99)
      << ", \"first_error\": \"";
  for (char c : first_error) out << (c == '"' || c == '\\' ? ' ' : c);
  out << "\"}";
  std::printf("%s\n", out.str().c_str());
  return errors == 0 ? 0 : 1;
}
