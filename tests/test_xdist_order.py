"""The GPU suite's long tests lead the blocks that pytest-xdist's work-stealing scheduler first hands its workers
(tests/xdist_order.py, used by conftest.py when benchmarks/gpu_test.sh names an earlier suite's log)."""
from types import SimpleNamespace

import pytest

import xdist_order

LOG = """\
[gw3] PASSED tests/test_a.py::test_x[1]
============================= slowest 25 durations =============================
188.18s call     tests/test_g.py::test_k[wavenet-rowdot-28]
159.27s call     tests/test_g.py::test_pdl[wavenet-28-rowdot]
21.00s setup    tests/test_b.py::test_y
3.00s call     tests/test_b.py::test_y
0.50s call     tests/test_c.py::test_z
=========================== short test summary info ============================
1.00s call     tests/test_after.py::not_a_duration
"""


def test_durations_are_read_from_the_section_alone_with_setup_and_call_summed():
    assert xdist_order.durations(LOG) == {"tests/test_g.py::test_k[wavenet-rowdot-28]": 188.18,
                                          "tests/test_g.py::test_pdl[wavenet-28-rowdot]": 159.27,
                                          "tests/test_b.py::test_y": 24.0, "tests/test_c.py::test_z": 0.5}
    assert xdist_order.read_durations("no/such/log") == {}


@pytest.mark.parametrize("n, workers", [(10, 3), (1349, 6), (5, 6), (7, 2)])
def test_block_sizes_cover_every_test(n, workers):
    sizes = xdist_order.block_sizes(n, workers)
    assert len(sizes) == workers and sum(sizes) == n and max(sizes) - min(sizes) <= 1


def test_long_tests_lead_the_blocks_longest_first_on_the_least_loaded():
    seconds = {3: 50.0, 17: 190.0, 25: 160.0, 26: 100.0, 29: 25.0, 9: 5.0}
    items = list(range(30))
    order = xdist_order.long_first(items, 3, seconds.get)
    assert sorted(order) == items
    blocks = [order[0:10], order[10:20], order[20:30]]
    # 190 s and 160 s lead two blocks, 100 s the third; 50 s and 25 s go where the least is so far (100, 150)
    assert blocks[0] == [17, 0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert blocks[1] == [25, 10, 11, 12, 13, 14, 15, 16, 18, 19]
    assert blocks[2] == [26, 3, 29, 20, 21, 22, 23, 24, 27, 28]


def test_without_workers_or_long_tests_the_order_is_kept():
    items = list(range(8))
    assert xdist_order.long_first(items, 1, {5: 100.0}.get) == items
    assert xdist_order.long_first(items, 4, {5: 3.0}.get) == items


def test_the_blocks_are_those_xdists_scheduler_sends():
    """xdist's own WorkStealingScheduling, with stand-in workers, sends each the block block_sizes counts."""
    worksteal = pytest.importorskip("xdist.scheduler.worksteal")
    sent = {}

    class Node:
        def __init__(self, name):
            self.gateway, self.shutting_down = SimpleNamespace(id=name), False

        def send_runtest_some(self, indices):
            sent[self.gateway.id] = list(indices)

    config = SimpleNamespace(getvalue={"tx": ["6*popen"]}.get)
    scheduler = worksteal.WorkStealingScheduling(config)
    nodes = [Node(f"gw{i}") for i in range(6)]
    collection = [f"t{i}" for i in range(1349)]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, collection)
    scheduler.schedule()
    sizes = xdist_order.block_sizes(len(collection), len(nodes))
    assert [len(sent[n.gateway.id]) for n in nodes] == sizes
    starts = [sent[n.gateway.id][0] for n in nodes]
    assert starts == [sum(sizes[:k]) for k in range(len(nodes))]
