// gloo.cc — the Gloo backend behind the C interface of gloo.h.  The only C++ file.
//
// One gloo::rendezvous::Context per process group, connected through a Store adapter over
// the caller's store callbacks.  Every entry point catches every C++ exception, turns it
// into an error code + message, and marks the context broken: Gloo contexts cannot be
// reused after a timeout or a lost peer (toolchain.md section 3), so failing fast is the
// only honest answer for later calls.
#include "gloo.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoallv.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/gather.h>
#include <gloo/reduce.h>
#include <gloo/reduce_scatter.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/scatter.h>
#include <gloo/transport/tcp/device.h>

#include "../core/common.h"

namespace {

using ms = std::chrono::milliseconds;

// Thrown by the store adapter; carries whether it was a timeout.
struct StoreError : std::runtime_error {
    bool timeout;
    StoreError(const std::string &m, bool t) : std::runtime_error(m), timeout(t) {}
};

class StoreAdapter : public gloo::rendezvous::Store {
  public:
    StoreAdapter(const so_gloo_store &s, int64_t timeout_ms) : s_(s), timeout_ms_(timeout_ms) {}

    void set(const std::string &key, const std::vector<char> &data) override {
        char err[SO_GLOO_ERRLEN] = "";
        int rc = s_.set(s_.handle, key.c_str(), data.data(), data.size(), err);
        if (rc) throw StoreError(err, rc == SO_GLOO_TIMEOUT);
    }
    std::vector<char> get(const std::string &key) override {
        char err[SO_GLOO_ERRLEN] = "";
        char *val = nullptr;
        size_t len = 0;
        int rc = s_.get(s_.handle, key.c_str(), timeout_ms_, &val, &len, err);
        if (rc) throw StoreError(err, rc == SO_GLOO_TIMEOUT);
        std::vector<char> out(val, val + len);
        free(val);
        return out;
    }
    void wait(const std::vector<std::string> &keys) override { wait(keys, ms(timeout_ms_)); }
    void wait(const std::vector<std::string> &keys, const ms &timeout) override {
        std::vector<const char *> ks;
        for (auto &k : keys) ks.push_back(k.c_str());
        char err[SO_GLOO_ERRLEN] = "";
        int rc = s_.wait(s_.handle, ks.data(), (int)ks.size(), (int64_t)timeout.count(), err);
        if (rc) throw StoreError(err, rc == SO_GLOO_TIMEOUT);
    }

  private:
    so_gloo_store s_;
    int64_t timeout_ms_;
};

// ---- reductions for every so_dtype: compute in a wide type, store in the dtype ----------
template <int DT> struct Elem;
template <> struct Elem<SO_FLOAT32> { using S = float; using C = float;
    static C ld(S v) { return v; } static S st(C v) { return v; } };
template <> struct Elem<SO_FLOAT64> { using S = double; using C = double;
    static C ld(S v) { return v; } static S st(C v) { return v; } };
template <> struct Elem<SO_FLOAT16> { using S = uint16_t; using C = float;
    static C ld(S v) { return so_fp16_to_float(v); } static S st(C v) { return so_float_to_fp16(v); } };
template <> struct Elem<SO_BFLOAT16> { using S = uint16_t; using C = float;
    static C ld(S v) { return so_bf16_to_float(v); } static S st(C v) { return so_float_to_bf16(v); } };
template <> struct Elem<SO_INT32> { using S = int32_t; using C = int32_t;
    static C ld(S v) { return v; } static S st(C v) { return v; } };
template <> struct Elem<SO_INT64> { using S = int64_t; using C = int64_t;
    static C ld(S v) { return v; } static S st(C v) { return v; } };
// bool: sum/max are "or", product/min are "and" (torch's semantics for bool tensors).
template <> struct Elem<SO_BOOL> { using S = uint8_t; using C = int;
    static C ld(S v) { return v != 0; } static S st(C v) { return (S)(v != 0); } };

template <int DT, int OP> typename Elem<DT>::C combine(typename Elem<DT>::C a, typename Elem<DT>::C b) {
    if (DT == SO_BOOL) return (OP == SO_RED_SUM || OP == SO_RED_MAX) ? (a || b) : (a && b);
    switch (OP) {
    case SO_RED_PRODUCT: return a * b;
    case SO_RED_MIN: return b < a ? b : a;
    case SO_RED_MAX: return b > a ? b : a;
    default: return a + b;
    }
}

template <int DT, int OP> void reduce3(void *out, const void *a, const void *b, size_t n) {
    using E = Elem<DT>;
    auto *o = static_cast<typename E::S *>(out);
    auto *x = static_cast<const typename E::S *>(a);
    auto *y = static_cast<const typename E::S *>(b);
    for (size_t i = 0; i < n; i++) o[i] = E::st(combine<DT, OP>(E::ld(x[i]), E::ld(y[i])));
}

template <int DT, int OP> void reduce2(typename Elem<DT>::S *x, const typename Elem<DT>::S *y, size_t n) {
    reduce3<DT, OP>(x, x, y, n);
}

using Fn3 = void (*)(void *, const void *, const void *, size_t);

template <int DT> Fn3 pick3(int op) {
    switch (op) {
    case SO_RED_PRODUCT: return reduce3<DT, SO_RED_PRODUCT>;
    case SO_RED_MIN: return reduce3<DT, SO_RED_MIN>;
    case SO_RED_MAX: return reduce3<DT, SO_RED_MAX>;
    default: return reduce3<DT, SO_RED_SUM>;
    }
}

Fn3 reduce_fn(int dtype, int op) {
    switch (dtype) {
    case SO_FLOAT32: return pick3<SO_FLOAT32>(op);
    case SO_FLOAT64: return pick3<SO_FLOAT64>(op);
    case SO_FLOAT16: return pick3<SO_FLOAT16>(op);
    case SO_BFLOAT16: return pick3<SO_BFLOAT16>(op);
    case SO_INT32: return pick3<SO_INT32>(op);
    case SO_INT64: return pick3<SO_INT64>(op);
    case SO_BOOL: return pick3<SO_BOOL>(op);
    default: return nullptr;
    }
}

// Gloo's typed setInput<T> only uses sizeof(T): pass an unsigned type of the item size.
template <typename Opts> void set_io(Opts &o, void *in, void *out, size_t count, int dtype) {
    switch (so_dtype_itemsize(dtype)) {
    case 1: o.setInput((uint8_t *)in, count); o.setOutput((uint8_t *)out, count); break;
    case 2: o.setInput((uint16_t *)in, count); o.setOutput((uint16_t *)out, count); break;
    case 4: o.setInput((uint32_t *)in, count); o.setOutput((uint32_t *)out, count); break;
    default: o.setInput((uint64_t *)in, count); o.setOutput((uint64_t *)out, count); break;
    }
}

template <int DT> int run_reduce_scatter(const std::shared_ptr<gloo::Context> &ctx, void *buf,
                                         size_t count, int op) {
    using S = typename Elem<DT>::S;
    using RF = gloo::ReductionFunction<S>;
    // ReductionFunction wants a plain function pointer; one static object per op.
    static RF f_sum(gloo::SUM, reduce2<DT, SO_RED_SUM>);
    static RF f_prod(gloo::PRODUCT, reduce2<DT, SO_RED_PRODUCT>);
    static RF f_min(gloo::MIN, reduce2<DT, SO_RED_MIN>);
    static RF f_max(gloo::MAX, reduce2<DT, SO_RED_MAX>);
    const RF *fn = op == SO_RED_PRODUCT ? &f_prod : op == SO_RED_MIN ? &f_min
                 : op == SO_RED_MAX ? &f_max : &f_sum;
    std::vector<S *> ptrs{static_cast<S *>(buf)};
    std::vector<int> recv(ctx->size, (int)count);
    gloo::ReduceScatterHalvingDoubling<S> alg(ctx, ptrs, (int)(count * ctx->size), recv, fn);
    alg.run();
    return 0;
}

}  // namespace

struct so_gloo_ctx {
    std::shared_ptr<gloo::rendezvous::Context> ctx;
    std::string broken;  // non-empty once a failure made the context unusable
    uint32_t tag = 0;
};

// Run fn, converting any exception into (code, message) and breaking the context.
template <typename F> static int guarded(so_gloo_ctx *c, const char *op, char *err, F &&fn) {
    if (!c->broken.empty()) {
        snprintf(err, SO_GLOO_ERRLEN, "%s: the process group is unusable after an earlier "
                 "failure (%s)", op, c->broken.c_str());
        return SO_GLOO_ERR;
    }
    std::string msg;
    bool timeout = false;
    try {
        fn();
        return SO_GLOO_OK;
    } catch (const StoreError &e) {
        msg = e.what();
        timeout = e.timeout;
    } catch (const gloo::IoException &e) {
        msg = e.what();
        timeout = msg.find("Timed out") != std::string::npos ||
                  msg.find("timed out") != std::string::npos ||
                  msg.find("Timeout") != std::string::npos;
    } catch (const std::exception &e) {
        msg = e.what();
    } catch (...) {
        msg = "unknown C++ exception";
    }
    c->broken = std::string(op) + ": " + msg;
    snprintf(err, SO_GLOO_ERRLEN, "Gloo %s failed: %s", op, msg.c_str());
    return timeout ? SO_GLOO_TIMEOUT : SO_GLOO_ERR;
}

extern "C" {

int so_gloo_connect(const so_gloo_store *store, int rank, int size, int64_t timeout_ms,
                    so_gloo_ctx **out, char *err) {
    auto *c = new (std::nothrow) so_gloo_ctx;
    if (!c) {
        snprintf(err, SO_GLOO_ERRLEN, "out of memory (%s:%d)", __FILE__, __LINE__);
        return SO_GLOO_ERR;
    }
    int rc = guarded(c, "rendezvous", err, [&] {
        gloo::transport::tcp::attr attr;
        // Loopback unless told otherwise: multi-node runs set GLOO_SOCKET_IFADDR.
        const char *addr = getenv("GLOO_SOCKET_IFADDR");
        attr.hostname = addr && *addr ? addr : "127.0.0.1";
        auto dev = gloo::transport::tcp::CreateDevice(attr);
        StoreAdapter adapter(*store, timeout_ms);
        auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, size);
        ctx->setTimeout(ms(timeout_ms));
        ctx->connectFullMesh(adapter, dev);
        c->ctx = ctx;
    });
    if (rc) {
        delete c;
        return rc;
    }
    *out = c;
    return SO_GLOO_OK;
}

void so_gloo_free(so_gloo_ctx *c) {
    if (!c) return;
    try {
        c->ctx.reset();
    } catch (...) {
    }
    delete c;
}

int so_gloo_broken(so_gloo_ctx *c, const char **why) {
    if (why) *why = c->broken.c_str();
    return !c->broken.empty();
}

int so_gloo_allreduce(so_gloo_ctx *c, void *buf, size_t count, int dtype, int op,
                      int64_t timeout_ms, char *err) {
    return guarded(c, "all_reduce", err, [&] {
        gloo::AllreduceOptions o(c->ctx);
        set_io(o, buf, buf, count, dtype);
        o.setReduceFunction(reduce_fn(dtype, op));
        o.setTag(c->tag++);
        o.setTimeout(ms(timeout_ms));
        gloo::allreduce(o);
    });
}

int so_gloo_reduce(so_gloo_ctx *c, void *buf, size_t count, int dtype, int op, int root,
                   int64_t timeout_ms, char *err) {
    return guarded(c, "reduce", err, [&] {
        gloo::ReduceOptions o(c->ctx);
        set_io(o, buf, buf, count, dtype);
        o.setRoot(root);
        o.setReduceFunction(reduce_fn(dtype, op));
        o.setTag(c->tag++);
        o.setTimeout(ms(timeout_ms));
        gloo::reduce(o);
    });
}

int so_gloo_broadcast(so_gloo_ctx *c, void *buf, size_t nbytes, int root, int64_t timeout_ms,
                      char *err) {
    return guarded(c, "broadcast", err, [&] {
        gloo::BroadcastOptions o(c->ctx);
        o.setOutput((uint8_t *)buf, nbytes);
        o.setRoot(root);
        o.setTag(c->tag++);
        o.setTimeout(ms(timeout_ms));
        gloo::broadcast(o);
    });
}

int so_gloo_allgather(so_gloo_ctx *c, const void *in, void *out, size_t nbytes,
                      int64_t timeout_ms, char *err) {
    return guarded(c, "all_gather", err, [&] {
        gloo::AllgatherOptions o(c->ctx);
        o.setInput((uint8_t *)in, nbytes);
        o.setOutput((uint8_t *)out, nbytes * c->ctx->size);
        o.setTag(c->tag++);
        o.setTimeout(ms(timeout_ms));
        gloo::allgather(o);
    });
}

int so_gloo_reduce_scatter(so_gloo_ctx *c, void *buf, void *out, size_t count, int dtype,
                           int op, int64_t timeout_ms, char *err) {
    return guarded(c, "reduce_scatter", err, [&] {
        // The algorithm class has no per-op timeout: the context's (set at connect) applies.
        c->ctx->setTimeout(ms(timeout_ms));
        std::shared_ptr<gloo::Context> base = c->ctx;
        switch (dtype) {
        case SO_FLOAT32: run_reduce_scatter<SO_FLOAT32>(base, buf, count, op); break;
        case SO_FLOAT64: run_reduce_scatter<SO_FLOAT64>(base, buf, count, op); break;
        case SO_FLOAT16: run_reduce_scatter<SO_FLOAT16>(base, buf, count, op); break;
        case SO_BFLOAT16: run_reduce_scatter<SO_BFLOAT16>(base, buf, count, op); break;
        case SO_INT32: run_reduce_scatter<SO_INT32>(base, buf, count, op); break;
        case SO_INT64: run_reduce_scatter<SO_INT64>(base, buf, count, op); break;
        default: run_reduce_scatter<SO_BOOL>(base, buf, count, op); break;
        }
        // Rank r's chunk lands at the START of the buffer (toolchain.md section 3).
        memcpy(out, buf, count * so_dtype_itemsize(dtype));
    });
}

int so_gloo_gather(so_gloo_ctx *c, const void *in, void *out, size_t nbytes, int root,
                   int64_t timeout_ms, char *err) {
    return guarded(c, "gather", err, [&] {
        gloo::GatherOptions o(c->ctx);
        o.setInput((uint8_t *)in, nbytes);
        if (c->ctx->rank == root) o.setOutput((uint8_t *)out, nbytes * c->ctx->size);
        o.setRoot(root);
        o.setTag(c->tag++);
        o.setTimeout(ms(timeout_ms));
        gloo::gather(o);
    });
}

int so_gloo_scatter(so_gloo_ctx *c, const void *in, void *out, size_t nbytes, int root,
                    int64_t timeout_ms, char *err) {
    return guarded(c, "scatter", err, [&] {
        gloo::ScatterOptions o(c->ctx);
        std::vector<uint8_t *> ptrs;
        if (c->ctx->rank == root) {
            for (int r = 0; r < c->ctx->size; r++) ptrs.push_back((uint8_t *)in + r * nbytes);
            o.setInputs(ptrs, nbytes);
        }
        o.setOutput((uint8_t *)out, nbytes);
        o.setRoot(root);
        o.setTag(c->tag++);
        o.setTimeout(ms(timeout_ms));
        gloo::scatter(o);
    });
}

int so_gloo_alltoallv(so_gloo_ctx *c, const void *in, const int64_t *in_bytes, void *out,
                      const int64_t *out_bytes, int64_t timeout_ms, char *err) {
    return guarded(c, "all_to_all", err, [&] {
        gloo::AlltoallvOptions o(c->ctx);
        std::vector<int64_t> ib(in_bytes, in_bytes + c->ctx->size);
        std::vector<int64_t> ob(out_bytes, out_bytes + c->ctx->size);
        // Gloo dislikes null pointers even for empty buffers; a dummy byte is never read.
        static uint8_t dummy[8];
        o.setInput(in ? (uint8_t *)in : dummy, ib);
        o.setOutput(out ? (uint8_t *)out : dummy, ob);
        o.setTag(c->tag++);
        o.setTimeout(ms(timeout_ms));
        gloo::alltoallv(o);
    });
}

int so_gloo_barrier(so_gloo_ctx *c, int64_t timeout_ms, char *err) {
    return guarded(c, "barrier", err, [&] {
        gloo::BarrierOptions o(c->ctx);
        o.setTag(c->tag++);
        o.setTimeout(ms(timeout_ms));
        gloo::barrier(o);
    });
}

int so_gloo_send(so_gloo_ctx *c, const void *buf, size_t nbytes, int dst, uint32_t tag,
                 int64_t timeout_ms, char *err) {
    return guarded(c, "send", err, [&] {
        auto ub = c->ctx->createUnboundBuffer(const_cast<void *>(buf), nbytes);
        // Slots above 2^32 never collide with collective tags.
        ub->send(dst, (uint64_t(1) << 32) | tag);
        if (!ub->waitSend(ms(timeout_ms)))
            throw gloo::IoException("send aborted");
    });
}

int so_gloo_recv(so_gloo_ctx *c, void *buf, size_t nbytes, int src, uint32_t tag,
                 int64_t timeout_ms, char *err) {
    return guarded(c, "recv", err, [&] {
        auto ub = c->ctx->createUnboundBuffer(buf, nbytes);
        ub->recv(src, (uint64_t(1) << 32) | tag);
        if (!ub->waitRecv(ms(timeout_ms)))
            throw gloo::IoException("recv aborted");
    });
}

}  // extern "C"
