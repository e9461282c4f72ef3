/* join.h — cat / stack (join.c), built on so_copy_ into slices of the output. */
#ifndef SO_JOIN_H
#define SO_JOIN_H

#include "../tensor/tensor.h"

/* torch.promote_types restricted to shardopt's dtypes (result dtype of cat/stack). */
int so_promote_types(int a, int b);

#endif
