// gloo_io.cc — the exception-safe replacement of Gloo's TCP event-loop thread (gloo_io.h).
//
// Gloo's Loop::run dispatches epoll events to the pairs' handleEvents with nothing around
// the call, so any exception a pair throws on the I/O thread (a failed GLOO_ENFORCE when a
// peer's message does not fit the posted receive) reaches std::terminate.  The loop below is
// the same loop (same epoll set, same tick notification, same 10 ms wake-up) with each call
// guarded; the failing pair and then every other pair of its context are closed through
// Gloo's own Pair::signalException, which wakes local waiters with the error and closes the
// sockets so peers fail too.
//
// The members this needs are private or protected in the Gloo version we link (the
// Debian/Ubuntu libgloo 2022-05 snapshot), so they are reached with the explicit-
// instantiation access idiom below (standard C++: access is not checked in the template
// arguments of an explicit instantiation).  The layout comes from the headers we compile
// against, so this is only as version-specific as any use of those headers.
#include "gloo_io.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <time.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <gloo/transport/tcp/device.h>
#include <gloo/transport/tcp/loop.h>
#include <gloo/transport/tcp/pair.h>
#include <gloo/transport/tcp/unbound_buffer.h>

namespace tcp = gloo::transport::tcp;

namespace {

template <typename Tag, typename Tag::type M> struct Rob {
    friend typename Tag::type get(Tag) { return M; }
};
#define SO_ROB(tag, T, cls, member)                                                          \
    struct tag {                                                                             \
        using type = T cls::*;                                                               \
        friend type get(tag);                                                                \
    };                                                                                       \
    template struct Rob<tag, &cls::member>

SO_ROB(DeviceLoop, std::shared_ptr<tcp::Loop>, tcp::Device, loop_);
SO_ROB(LoopFd, int, tcp::Loop, fd_);
SO_ROB(LoopDone, std::atomic<bool>, tcp::Loop, done_);
SO_ROB(LoopThread, std::unique_ptr<std::thread>, tcp::Loop, loop_);
SO_ROB(LoopCv, std::condition_variable, tcp::Loop, cv_);
SO_ROB(PairMutex, std::mutex, tcp::Pair, m_);
SO_ROB(PairEx, std::exception_ptr, tcp::Pair, ex_);
SO_ROB(PairRx, tcp::Op, tcp::Pair, rx_);

struct PairSignal {
    using type = void (tcp::Pair::*)(const std::string &);
    friend type get(PairSignal);
};
template struct Rob<PairSignal, &tcp::Pair::signalException>;

struct BufferSignal {
    using type = void (tcp::UnboundBuffer::*)(std::exception_ptr);
    friend type get(BufferSignal);
};
template struct Rob<BufferSignal, &tcp::UnboundBuffer::signalException>;

}  // namespace

struct so_gloo_io {
    struct Pending {
        tcp::Pair *pair;
        bool faulty;  // the pair whose handler threw: its in-flight receive needs waking too
    };
    std::mutex mu;    // guards everything below (I/O thread vs attach/detach)
    gloo::Context *ctx = nullptr;
    std::function<void(const std::string &)> on_fail;
    std::string failed;               // the first error; non-empty once failing
    std::vector<Pending> pending;     // pairs still to close (their lock was busy)

    // Under mu.  A pair's lock is only tried: a user thread may hold it while it waits for
    // this thread's next tick (Gloo's unregisterDescriptor), so blocking here could deadlock.
    void close_pending_locked() {
        for (auto it = pending.begin(); it != pending.end();) {
            tcp::Pair *p = it->pair;
            std::mutex &m = p->*get(PairMutex());
            if (!m.try_lock()) {
                ++it;
                continue;
            }
            try {
                if (p->*get(PairEx()) == nullptr) (p->*get(PairSignal()))(failed);
                if (it->faulty) {
                    // Gloo's signalException skips the receive the failing read had already
                    // dequeued; without this its waiter would sleep until the op timeout.
                    gloo::NonOwningPtr<tcp::UnboundBuffer> b((p->*get(PairRx())).ubuf);
                    std::exception_ptr ex = p->*get(PairEx());
                    if (b && ex) (b.operator->()->*get(BufferSignal()))(ex);
                }
            } catch (...) {
                // The pair was already closed; nothing more to signal.
            }
            m.unlock();
            it = pending.erase(it);
        }
    }

    void fail(tcp::Handler *h, const std::string &what) {
        std::lock_guard<std::mutex> g(mu);
        if (!ctx || !failed.empty()) return;  // detached, or already failing
        failed = "Gloo I/O thread: " + what;
        if (on_fail) on_fail(failed);
        auto *bad = static_cast<tcp::Pair *>(h);  // every handler of a tcp device is a Pair
        if (bad) pending.push_back({bad, true});
        for (int r = 0; r < ctx->size; r++) {
            if (r == ctx->rank) continue;
            auto *p = static_cast<tcp::Pair *>(ctx->getPair(r).get());
            if (p && p != bad) pending.push_back({p, false});
        }
        close_pending_locked();
    }

    void tick() {
        std::lock_guard<std::mutex> g(mu);
        if (!pending.empty()) close_pending_locked();
    }
};

// Gloo's handleEvents only try-locks its pair and returns at once when a user thread holds
// the lock; epoll is level-triggered, so the loop then spins on the same event until the
// holder lets go.  On a loaded machine the holder is often preempted, and the spinning I/O
// thread keeps it off the core until the next scheduler tick: measured on 2 cores, ~1.3 ms
// of I/O-thread CPU and 4 involuntary context switches per 8 KiB all_reduce, the median
// landing on the 4 ms tick.  So the loop sleeps on the pair's mutex instead (a futex wait:
// the holder's unlock wakes it) -- but only briefly, because a holder may be waiting for this
// thread's next tick (Gloo's unregisterDescriptor, as a pair closes), which is why Gloo never
// blocks there.  The tick is not signalled here: a closing pair is freed once its closer sees
// the tick, and the handlers of the current batch must stay valid until the batch is done.
static void wait_for_pair(tcp::Pair *p) {
    std::mutex &m = p->*get(PairMutex());
    if (m.try_lock()) {
        m.unlock();
        return;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 2 * 1000 * 1000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec += 1;
        until.tv_nsec -= 1000000000L;
    }
    if (pthread_mutex_timedlock(m.native_handle(), &until) == 0) m.unlock();
}

static void run_loop(tcp::Loop *loop, std::shared_ptr<so_gloo_io> io) {
    const int fd = loop->*get(LoopFd());
    std::atomic<bool> &done = loop->*get(LoopDone());
    std::condition_variable &tick = loop->*get(LoopCv());
    std::array<struct epoll_event, 64> events;
    while (!done) {
        tick.notify_all();  // wakes unregisterDescriptor callers, as Gloo's loop does
        io->tick();
        int n = epoll_wait(fd, events.data(), (int)events.size(), 10);
        if (n <= 0) {
            if (n < 0 && errno != EINTR) {
                io->fail(nullptr, std::string("epoll_wait: ") + strerror(errno));
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            continue;
        }
        for (int i = 0; i < n; i++) {
            auto *h = static_cast<tcp::Handler *>(events[i].data.ptr);
            wait_for_pair(static_cast<tcp::Pair *>(h));
            try {
                h->handleEvents((int)events[i].events);
            } catch (const std::exception &e) {
                io->fail(h, e.what());
            } catch (...) {
                io->fail(h, "unknown C++ exception");
            }
        }
    }
}

std::shared_ptr<so_gloo_io> so_gloo_io_take_over(const std::shared_ptr<gloo::transport::Device> &dev) {
    auto *tdev = static_cast<tcp::Device *>(dev.get());
    tcp::Loop *loop = (tdev->*get(DeviceLoop())).get();
    auto io = std::make_shared<so_gloo_io>();
    std::unique_ptr<std::thread> &thread = loop->*get(LoopThread());
    std::atomic<bool> &done = loop->*get(LoopDone());
    // Nothing is registered yet, so stopping Gloo's thread loses no event.  ~Loop sets
    // done_ and joins loop_, which is then ours.
    done = true;
    thread->join();
    done = false;
    thread.reset(new std::thread(run_loop, loop, io));
    return io;
}

void so_gloo_io_attach(so_gloo_io *io, gloo::Context *ctx,
                       std::function<void(const std::string &)> on_fail) {
    std::lock_guard<std::mutex> g(io->mu);
    io->ctx = ctx;
    io->on_fail = std::move(on_fail);
}

void so_gloo_io_detach(so_gloo_io *io) {
    std::lock_guard<std::mutex> g(io->mu);
    io->ctx = nullptr;
    io->on_fail = nullptr;
    io->pending.clear();
}
