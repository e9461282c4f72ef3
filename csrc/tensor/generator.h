/* generator.h — _C.Generator: the state of one Philox stream (seed + offset in blocks) and
 * the per-device default generators kept in module state (see ops/philox.h for what a block
 * is and how a draw advances the offset). */
#ifndef SO_GENERATOR_H
#define SO_GENERATOR_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    PyObject_HEAD
    uint64_t seed;        /* Philox key */
    uint64_t offset;      /* next unused counter block */
    so_device device;
} SoGenerator;

/* torch's default seed (c10::detail::default_rng_seed_val), used until someone seeds. */
#define SO_DEFAULT_SEED 67280421310721ull

/* The default generator of `dev` (cpu, or cuda:i), created on first use.  Borrowed. */
SoGenerator *so_default_generator(so_state *st, so_device dev);
/* The generator= argument of a draw on `dev`: None -> the default one; otherwise it must be
 * a Generator of the same device type (TypeError / RuntimeError naming `generator`). Borrowed. */
SoGenerator *so_generator_for(so_state *st, PyObject *gen, so_device dev);
/* Reserve `blocks` counter blocks: returns the first, advances the state past them. */
static inline uint64_t so_generator_take(SoGenerator *g, uint64_t blocks)
{
    uint64_t first = g->offset;
    g->offset += blocks;
    return first;
}

int so_register_generator(PyObject *m, so_state *st);

#ifdef __cplusplus
}
#endif
#endif
