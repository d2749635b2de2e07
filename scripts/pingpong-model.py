"""pingpong-model.py — a check of the ping-pong kernel's protocol, not of its code (no GPU needed):
python3 scripts/pingpong-model.py

Randomised interleaving model of assign_wgmma_pingpong.cu's synchronisation: the producer
warp (cp.async with delayed completion + mbarrier noinc arrival), 8 consumer warps in two
warpgroups (turn barriers 1/2 of 256 threads, full/empty mbarriers with parity waits, early
release of a tile's first kchunks-1 stages, the last after the epilogue). Checks: no deadlock,
every consumed stage holds the step the consumer expects, no slot overwritten while held, no
named-barrier arrival left over; and that a ring shallower than a tile's chunks does deadlock
(the bound the launcher enforces). Keep it in step with the kernel when either changes."""
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

def run(ntiles, kchunks, nst, seed):
    rnd = random.Random(seed)
    steps = ntiles * kchunks
    full = [MBar(32) for _ in range(nst)]
    empty = [MBar(8) for _ in range(nst)]
    bars = {1: NamedBar(256), 2: NamedBar(256)}
    slot_tag = [None] * nst          # step whose data the slot holds (at copy completion)
    holders = [set() for _ in range(nst)]  # warps between the full wait and their release
    inflight = []                    # (slot, step, lane) copies not yet landed
    pending_arrive = []              # (slot, lane, n copies before it)

    def producer():
        for s in range(steps):
            slot, phase = s % nst, (s // nst) & 1
            while not empty[slot].ready(phase ^ 1): yield 'wait'
            assert not holders[slot], f"producer refills slot {slot} held by {holders[slot]}"
            for lane in range(32):
                inflight.append((slot, s, lane))
            for lane in range(32):
                pending_arrive.append((slot, s, lane))
            yield 'run'
        while inflight or pending_arrive: yield 'wait'

    def consumer(w):
        wg, lane0 = w // 4, True
        slot = phase = 0
        if wg == 1: bars[1].arrive(32); yield 'run'
        for t in range(ntiles):
            first = slot
            bid = 1 + wg
            gen = bars[bid].gen
            bars[bid].arrive(32)
            while bars[bid].gen == gen: yield 'wait'
            held = []
            for kc in range(kchunks):
                while not full[slot].ready(phase): yield 'wait'
                step = t * kchunks + kc
                assert slot_tag[slot] == step, f"warp {w} expects step {step} in slot {slot}, holds {slot_tag[slot]}"
                holders[slot].add(w); held.append((slot, step))
                slot += 1
                if slot == nst: slot = 0; phase ^= 1
                yield 'run'
            if wg == 0 or t + 1 < ntiles: bars[2 - wg].arrive(32)
            yield 'run'  # wait_group 0
            for (sl, st) in held[:-1]:
                assert slot_tag[sl] == st; holders[sl].discard(w); empty[sl].arrive()
            yield 'run'  # epilogue reads the last slot's ||c||^2
            sl, st = held[-1]
            assert slot_tag[sl] == st, "||c||^2 overwritten during the epilogue"
            holders[sl].discard(w); empty[sl].arrive()
            yield 'run'

    gens = {'p': producer()}
    for w in range(8): gens[w] = consumer(w)
    idle = 0
    while gens:
        # asynchronous copy completions and their mbarrier arrivals, in random order per lane
        if inflight and rnd.random() < 0.5:
            i = rnd.randrange(len(inflight)); sl, st, lane = inflight.pop(i)
            assert not holders[sl], "copy lands in a held slot"
            slot_tag[sl] = st
        # an arrival fires once every earlier copy of that lane has landed
        for j, (sl, st, lane) in enumerate(list(pending_arrive)):
            if not any(l == lane and s2 <= st for (_, s2, l) in inflight):
                pending_arrive.remove((sl, st, lane)); full[sl].arrive(); break
        k = rnd.choice(list(gens))
        try:
            r = next(gens[k])
            idle = 0 if r == 'run' else idle + 1
        except StopIteration:
            del gens[k]; idle = 0
        if idle > 20000:
            raise AssertionError(f"deadlock ntiles={ntiles} kchunks={kchunks} nst={nst}: {list(gens)}")
    assert bars[1].arrived == 0 and bars[2].arrived == 0, "dangling named-barrier arrivals"

if __name__ == "__main__":
    n = 0
    for ntiles in (1, 2, 3, 8):
        for kchunks in (1, 2, 4):
            for nst in range(kchunks, 9):
                for seed in range(6):
                    run(ntiles, kchunks, nst, seed); n += 1
    print("ok", n, "runs")
    # below the launcher's bound (nst < kchunks) the model must deadlock
    try:
        run(2, 4, 3, 0); print("UNEXPECTED: no deadlock with nst < kchunks")
    except AssertionError as e:
        print("nst < kchunks:", str(e)[:60])
