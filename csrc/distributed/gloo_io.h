// gloo_io.h — an exception-safe I/O thread for Gloo's TCP transport (C++, private to
// gloo.cc).
//
// Gloo runs every socket read and write of a device on one event-loop thread
// (gloo::transport::tcp::Loop::run).  A Gloo check that fails there -- ranks that disagree on
// a collective's size make a peer's message longer than the posted receive
// ("op.preamble.length <= op.nbytes") -- throws gloo::EnforceNotMet out of the thread and
// std::terminate aborts the whole process.  The Gloo version we link cannot be patched, so
// each device's loop thread is replaced, before any socket is registered, by one that runs
// the same loop with every handler call inside try/catch.  A handler that throws fails its
// process group: every pair of the context is closed with the error (the local waiters wake
// with it, the peers see the connection close), so every rank raises DistBackendError.
#ifndef SO_DIST_GLOO_IO_H
#define SO_DIST_GLOO_IO_H

#include <functional>
#include <memory>
#include <string>

#include <gloo/context.h>
#include <gloo/transport/device.h>

struct so_gloo_io;

// Stop dev's own loop thread and run the exception-safe one in its place.  dev must be a
// fresh gloo::transport::tcp::Device with nothing registered yet.  Throws on failure.
std::shared_ptr<so_gloo_io> so_gloo_io_take_over(const std::shared_ptr<gloo::transport::Device> &dev);

// Tell the loop which context's pairs to close when a handler throws, and whom to tell
// (on_fail runs on the I/O thread with the error message; it must not block).
void so_gloo_io_attach(so_gloo_io *io, gloo::Context *ctx,
                       std::function<void(const std::string &)> on_fail);
// Forget the context (before it is destroyed).
void so_gloo_io_detach(so_gloo_io *io);

#endif  // SO_DIST_GLOO_IO_H
