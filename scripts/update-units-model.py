#!/usr/bin/env python3
"""Host model of src/cuda/update.cu's index arithmetic (no floating point): the sort (counting
path: out-of-range labels dropped; radix path: counted and sorted as label 0, one stable sort
of the whole batch, rows past a short part keyed last), the reduce's units aligned per problem
(unit u = problem u // upp, i = u % upp), its segments, "whole" test and partial slots
(2u first segment, 2u + 1 last), list_kernel, the combine's slot lookup and unit order, the
objective's units, and fkm_cuda_update_parts' mapping (parts = ceil(src_n / n), a shorter last
part). Random shapes; checks that every partial slot is written at most once and below
part_cap = 2 * units, that the combine reads exactly the slots its cluster wrote, in the
cluster's order, that every sorted point is reduced once, and that each call problem's whole
computation (problem-relative ranges, point ids, warp and thread assignment of the combine's
sums, its labels) equals that of a call over that part's rows alone: the structure behind
"one call over B problems (or over the pieces of X) equals B single calls bit for bit".
Mutations (combine's first-slot offset, slot = u, global unit numbering, part rows = n) are
caught. Usage: python3 scripts/update-units-model.py [cases]"""
import random, math, sys

COMB_WARPS, OBJ_THREADS = 8, 256

def sort_call(labels_all, batch, n, k, src_n, counting):
    # fkm_cuda_update_parts: parts = ceil(src_n / n); call problem p = part j of source s,
    # rows j*n .. min((j+1)*n, src_n) - 1. Returns scanned starts per cluster, sorted ids, clusters.
    parts = -(-src_n // n)
    assert batch % parts == 0
    def row_base(p):
        s = p // parts
        return s * src_n + (p - s * parts) * n
    def part_rows(p):
        return min(n, src_n - (p % parts) * n)
    cnt = [0] * (batch * k)
    keyed = []   # (key, within-problem id) in index order, the radix path's global sort input
    for p in range(batch):
        rows = part_rows(p)
        for i in range(n):
            if i >= rows:
                keyed.append((batch * k, i)); continue   # past the part: "no point" key
            L = labels_all[row_base(p) + i]
            if 0 <= L < k: g = p * k + L
            elif counting: continue                       # dropped by histogram and scatter alike
            else: g = p * k                               # radix: counted and sorted as label 0
            cnt[g] += 1
            keyed.append((g, i))
    starts, acc = [], 0
    for g in range(batch * k):
        starts.append(acc); acc += cnt[g]
    starts.append(acc)
    srt = sorted(keyed, key=lambda t: t[0])   # stable
    srt = [t for t in srt if t[0] < batch * k]
    assert len(srt) == acc
    order = [t[1] for t in srt]
    sg = [t[0] for t in srt]
    # the positions are the scanned counts: every point of cluster g sits in [starts[g], starts[g+1])
    for g in range(batch * k):
        assert all(sg[x] == g for x in range(starts[g], starts[g + 1]))
    return starts, order, sg, row_base, part_rows

def run_call(labels_all, batch, n, k, src_n, unit, counting):
    starts, order, sg, row_base, part_rows = sort_call(labels_all, batch, n, k, src_n, counting)
    upp = -(-n // unit)
    units = batch * upp
    part_cap = 2 * units
    slots = {}
    whole_out = {}   # g -> structure
    part_obj = {}
    covered = [0] * len(order)
    for u in range(units):
        p = u // upp
        P0, P1 = starts[p * k], starts[(p + 1) * k]
        p0 = P0 + (u - p * upp) * unit
        if p0 >= P1: continue
        np_ = min(unit, P1 - p0)
        prev_g = sg[p0 - 1] if p0 > P0 else None
        next_g = sg[p0 + np_] if p0 + np_ < P1 else None
        q = 0
        segs = []
        while q < np_:
            g = sg[p0 + q]
            e = q + 1
            while e < np_ and sg[p0 + e] == g: e += 1
            for t in range(q, e): covered[p0 + t] += 1
            rel = (p0 + q - P0, p0 + e - P0, tuple(order[p0 + q: p0 + e]))  # problem-relative
            whole = (q > 0 or prev_g != g) and (e < np_ or next_g != g)
            if whole:
                assert g not in whole_out
                whole_out[g] = ('seg', rel)
            else:
                slot = 2 * u + (1 if q > 0 else 0)
                assert 0 <= slot < part_cap, slot
                assert slot not in slots, ('slot collision', slot)
                slots[slot] = (g, rel)
            segs.append(rel)
            q = e
        part_obj[u] = tuple(segs)
    assert all(c == 1 for c in covered)
    # list + combine
    out = {}
    clusters = batch * k
    for g in range(clusters):
        p = g // k
        P0 = starts[p * k]
        start, stop = starts[g] - P0, starts[g + 1] - P0
        one = stop > start and start // unit == (stop - 1) // unit
        if one:
            assert g in whole_out; out[g] = whole_out[g]; continue
        assert g not in whole_out
        nu = (stop - 1) // unit - start // unit + 1 if stop > start else 0
        u0 = p * upp + start // unit
        first = start % unit != 0
        reads = []
        for i in range(nu):
            slot = 2 * (u0 + i) + (1 if (i == 0 and first) else 0)
            assert slot in slots, ('unwritten slot', g, slot)
            gg, rel = slots.pop(slot)
            assert gg == g
            reads.append((i % COMB_WARPS, rel))
        # the reads cover the cluster in order
        pos = start
        for w, rel in reads:
            assert rel[0] == pos; pos = rel[1]
        assert pos == stop or nu == 0
        out[g] = ('comb', tuple(reads))
    assert not slots, 'partials never read'
    objs = []
    for p in range(batch):
        P0, P1 = starts[p * k], starts[(p + 1) * k]
        if P1 > P0:
            ua, ub = p * upp, p * upp + (P1 - P0 - 1) // unit
            objs.append(tuple(((u - ua) % OBJ_THREADS, part_obj[u]) for u in range(ua, ub + 1)))
        else:
            objs.append(())
    per_problem = []
    for p in range(batch):
        per_problem.append((tuple(out[p * k + c] for c in range(k)), objs[p],
                            tuple(labels_all[row_base(p): row_base(p) + part_rows(p)])))
    return per_problem, units

def check(seed):
    rnd = random.Random(seed)
    k = rnd.choice([1, 2, 3, 7, 50, 300])
    unit = rnd.choice([32, 64, 256])
    nsrc = rnd.randint(1, 4)
    n = rnd.randint(1, 700)
    src_n = rnd.choice([n, n * rnd.randint(1, 4), n * rnd.randint(1, 4) - rnd.randint(0, n - 1), rnd.randint(1, 4 * n)])
    src_n = max(1, src_n)
    parts = -(-src_n // n)
    counting = rnd.random() < 0.5
    skew = rnd.random()
    labels = []
    for _ in range(nsrc * src_n):
        r = rnd.random()
        if r < 0.02: labels.append(-1 if rnd.random() < 0.5 else k + 3)   # out of range
        elif r < skew: labels.append(0)
        else: labels.append(rnd.randrange(k))
    batch = nsrc * parts
    batched, _ = run_call(labels, batch, n, k, src_n, unit, counting)
    for p in range(batch):
        s, j = divmod(p, parts)
        rows = min(n, src_n - j * n)
        lab = labels[s * src_n + j * n: s * src_n + j * n + rows]
        single, _ = run_call(lab, 1, rows, k, rows, unit, counting)
        assert single[0] == batched[p], ('problem differs', seed, p)

N = int(sys.argv[1]) if len(sys.argv) > 1 else 400
for sd in range(N): check(sd)
print('ok', N, 'random cases')
