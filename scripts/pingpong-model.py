"""pingpong-model.py — a check of the ping-pong kernel's protocol, not of its code (no GPU needed):
python3 scripts/pingpong-model.py

Randomised interleaving model of assign_wgmma_pingpong.cu's synchronisation: the producer
warp (cp.async with delayed completion + mbarrier noinc arrival), 8 consumer warps in two
warpgroups (turn barriers 1/2 of 256 threads, full/empty mbarriers with parity waits, early
release of a tile's first kchunks-1 stages, the last after the epilogue). Checks: no deadlock,
every consumed stage holds the step the consumer expects, no slot overwritten while held, no
named-barrier arrival left over; and that a ring shallower than a tile's chunks does deadlock
(the bound the launcher enforces). Keep it in step with the kernel when either changes.

Persistent mode (FLASHKM_WGMMA_OVERLAP=3, run(..., nrb=R, nxb=1|2)): the block walks R row
blocks; the producer's step sequence runs on across them (row block j's steps after j-1's, the
phases counting on), an X loader (warps 9..11, 96 noinc arrivals on x_full[xb]) fills nxb X
buffers, each after x_empty[xb] (one arrival per consumer warp in the model, every consumer
thread in the kernel, once its last MMA of
the row block retired); consumers wait x_full before a row block's first tile, the turns run
over all tiles of all row blocks (warpgroup 1 skips only the block's very last hand-over).
Extra checks: every MMA reads the X tile of its row block, no X buffer refilled while a warp
still reads it, every row block's results written once."""
import random, sys

class MBar:
    def __init__(s, count): s.count = count; s.pending = count; s.completed = 0
    def arrive(s):
        s.pending -= 1
        assert s.pending >= 0
        if s.pending == 0: s.completed += 1; s.pending = s.count
    def ready(s, parity): return parity != (s.completed & 1)

class NamedBar:
    def __init__(s, count): s.count = count; s.arrived = 0; s.gen = 0
    def arrive(s, n):
        s.arrived += n
        assert s.arrived <= s.count, "named barrier overflow"
        if s.arrived == s.count: s.arrived = 0; s.gen += 1

def run(ntiles, kchunks, nst, seed, nrb=1, nxb=0):
    """nxb = 0: the ping-pong kernel (X loaded before the split, one row block); nxb = 1 or 2:
    the persistent kernel walking nrb row blocks with that many X buffers."""
    rnd = random.Random(seed)
    persist = nxb > 0
    if not persist: assert nrb == 1
    tsteps = ntiles * kchunks
    steps = nrb * tsteps
    full = [MBar(32) for _ in range(nst)]
    empty = [MBar(8) for _ in range(nst)]
    x_full = [MBar(96) for _ in range(max(nxb, 1))]
    x_empty = [MBar(8) for _ in range(max(nxb, 1))]
    bars = {1: NamedBar(256), 2: NamedBar(256)}
    slot_tag = [None] * nst          # step whose data the slot holds (at copy completion)
    holders = [set() for _ in range(nst)]  # warps between the full wait and their release
    inflight = []                    # (kind, slot, step, lane) copies not yet landed
    pending_arrive = []              # (kind, slot, step, lane): noinc arrivals, fire after the lane's copies
    xtag = [None if persist else 0] * max(nxb, 1)   # row block whose X the buffer holds
    xholders = [set() for _ in range(max(nxb, 1))]
    written = [0] * nrb

    def loader(kind, count, nbuf, empties, held, lanes, what):
        """The producer warp (kind 'c': the ring's steps) or the X loader (kind 'x': row blocks):
        item i goes to buffer i % nbuf once that buffer's empty barrier has passed its previous
        use, as `lanes` copies, each with its noinc arrival on the full barrier."""
        for i in range(count):
            buf, phase = i % nbuf, (i // nbuf) & 1
            while not empties[buf].ready(phase ^ 1): yield 'wait'
            assert not held[buf], f"{what} {buf} refilled while held by {held[buf]}"
            for lane in range(lanes):
                inflight.append((kind, buf, i, lane))
            for lane in range(lanes):
                pending_arrive.append((kind, buf, i, lane))
            yield 'run'
        while any(k == kind for (k, _, _, _) in inflight + pending_arrive): yield 'wait'

    def consumer(w):
        wg = w // 4
        slot = phase = 0
        if wg == 1: bars[1].arrive(32); yield 'run'
        for j in range(nrb):
            xb, xphase = (j % nxb, (j // nxb) & 1) if persist else (0, 0)
            if persist:
                while not x_full[xb].ready(xphase): yield 'wait'
            assert xtag[xb] == j, f"warp {w} row block {j}: X buffer {xb} holds {xtag[xb]}"
            xholders[xb].add(w)
            for t in range(ntiles):
                held = []
                bid = 1 + wg
                gen = bars[bid].gen
                bars[bid].arrive(32)
                while bars[bid].gen == gen: yield 'wait'
                for kc in range(kchunks):
                    while not full[slot].ready(phase): yield 'wait'
                    step = j * tsteps + t * kchunks + kc
                    assert slot_tag[slot] == step, f"warp {w} expects step {step} in slot {slot}, holds {slot_tag[slot]}"
                    assert xtag[xb] == j, "X tile replaced under the MMAs"
                    holders[slot].add(w); held.append((slot, step))
                    slot += 1
                    if slot == nst: slot = 0; phase ^= 1
                    yield 'run'
                if wg == 0 or t + 1 < ntiles or j + 1 < nrb: bars[2 - wg].arrive(32)
                yield 'run'  # wait_group 0: this tile's MMAs (X and stage reads) retired
                for (sl, st) in held[:-1]:
                    assert slot_tag[sl] == st; holders[sl].discard(w); empty[sl].arrive()
                if persist and t + 1 == ntiles:
                    assert xtag[xb] == j
                    xholders[xb].discard(w); x_empty[xb].arrive()
                yield 'run'  # epilogue reads the last slot's ||c||^2
                sl, st = held[-1]
                assert slot_tag[sl] == st, "||c||^2 overwritten during the epilogue"
                holders[sl].discard(w); empty[sl].arrive()
                yield 'run'
            if not persist: xholders[xb].discard(w)
            written[j] += 1  # wg_finish: this warp's rows of row block j
            yield 'run'

    gens = {'p': loader('c', steps, nst, empty, holders, 32, 'ring slot')}
    if persist: gens['x'] = loader('x', nrb, nxb, x_empty, xholders, 96, 'X buffer')
    for w in range(8): gens[w] = consumer(w)
    idle = 0
    while gens:
        # asynchronous copy completions and their mbarrier arrivals, in random order per lane
        if inflight and rnd.random() < 0.5:
            i = rnd.randrange(len(inflight)); kind, sl, st, lane = inflight.pop(i)
            if kind == 'c':
                assert not holders[sl], "copy lands in a held slot"
                slot_tag[sl] = st
            else:
                assert not xholders[sl], "X copy lands in a held buffer"
                xtag[sl] = st
        # an arrival fires once every earlier copy of that lane (same issuing warp) has landed
        for (kind, sl, st, lane) in list(pending_arrive):
            if not any(k == kind and l == lane and s2 <= st for (k, _, s2, l) in inflight):
                pending_arrive.remove((kind, sl, st, lane))
                (full if kind == 'c' else x_full)[sl].arrive(); break
        k = rnd.choice(list(gens))
        try:
            r = next(gens[k])
            idle = 0 if r == 'run' else idle + 1
        except StopIteration:
            del gens[k]; idle = 0
        if idle > 20000:
            raise AssertionError(f"deadlock ntiles={ntiles} kchunks={kchunks} nst={nst} nrb={nrb} nxb={nxb}: {list(gens)}")
    assert bars[1].arrived == 0 and bars[2].arrived == 0, "dangling named-barrier arrivals"
    assert written == [8] * nrb, f"row blocks written {written}"
    for b in empty + full + x_full + x_empty:
        assert b.pending == b.count, "an mbarrier phase left half-arrived"

if __name__ == "__main__":
    n = 0
    for ntiles in (1, 2, 3, 8):
        for kchunks in (1, 2, 4):
            for nst in range(kchunks, 9):
                for seed in range(6):
                    run(ntiles, kchunks, nst, seed); n += 1
    print("ping-pong: ok", n, "runs")
    # the persistent kernel: several row blocks per block, one or two X buffers
    n = 0
    for nrb in (1, 2, 3, 5):
        for ntiles in (1, 2, 3):
            for kchunks in (1, 2, 4):
                for nst in sorted({kchunks, kchunks + 1, 2 * kchunks, 8}):  # kchunks <= 4: all <= 8
                    for nxb in (1, 2):
                        for seed in range(3):
                            run(ntiles, kchunks, nst, seed, nrb=nrb, nxb=nxb); n += 1
    print("persistent: ok", n, "runs")
    # below the launcher's bound (nst < kchunks) the model must deadlock
    for kw in ({}, {'nrb': 3, 'nxb': 2}):
        try:
            run(2, 4, 3, 0, **kw); print("UNEXPECTED: no deadlock with nst < kchunks", kw)
        except AssertionError as e:
            print("nst < kchunks", kw or "", ":", str(e)[:60])
