"""new_group(..., use_local_synchronization=True): only the members of the group call it
(torch's contract), so two disjoint groups made at the same moment by different ranks must
not share rendezvous keys, and groups made this way must not shift the numbering of the
groups every rank makes afterwards."""
import unittest

import shardopt
import shardopt.distributed as dist
from shardopt.testing._internal.common_distributed import spawn_threads_and_init_comms


def _sum_over(group):
    t = shardopt.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(t, group=group)
    return t.item()


class LocalSynchronizationGroups(unittest.TestCase):
    @spawn_threads_and_init_comms(world_size=4)
    def test_disjoint_groups_made_concurrently_by_their_members(self):
        rank = dist.get_rank()
        mine = [r for r in range(4) if r % 2 == rank % 2]  # {0, 2} or {1, 3}
        g = dist.new_group(mine, use_local_synchronization=True)
        self.assertEqual(dist.get_world_size(g), 2)
        self.assertEqual(dist.get_rank(g), mine.index(rank))
        self.assertEqual(_sum_over(g), float(sum(r + 1 for r in mine)))
        # a second group over the same ranks gets keys of its own
        again = dist.new_group(mine, use_local_synchronization=True)
        self.assertEqual(_sum_over(again), float(sum(r + 1 for r in mine)))
        dist.barrier(g)

    @spawn_threads_and_init_comms(world_size=4)
    def test_local_groups_leave_the_global_numbering_alone(self):
        rank = dist.get_rank()
        # ranks 0 and 2 make two local groups, ranks 1 and 3 one: the next collective
        # new_group must still agree on every rank
        if rank in (0, 2):
            dist.new_group([0, 2], use_local_synchronization=True)
            dist.new_group([0, 2], use_local_synchronization=True)
        else:
            dist.new_group([1, 3], use_local_synchronization=True)
        everyone = dist.new_group([0, 1, 2, 3])
        self.assertEqual(_sum_over(everyone), 10.0)
        halves = dist.new_group([1, 2])
        if rank in (1, 2):
            self.assertEqual(_sum_over(halves), 5.0)
        else:
            self.assertIs(halves, dist.GroupMember.NON_GROUP_MEMBER)
