/* reduce_op.h — the reduction ops shared by the front end and every backend (plain C, no
 * Python: gloo.cc includes it).  Values match shardopt.distributed.ReduceOp. */
#ifndef SO_DIST_REDUCE_OP_H
#define SO_DIST_REDUCE_OP_H

enum { SO_RED_SUM = 0, SO_RED_AVG = 1, SO_RED_PRODUCT = 2, SO_RED_MIN = 3, SO_RED_MAX = 4 };

#endif /* SO_DIST_REDUCE_OP_H */
