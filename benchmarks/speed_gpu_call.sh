#!/usr/bin/env bash
# One device call of issue 16's measurements (the GPU suite, then the kernels built since the last suite), as a
# session with 30 minutes of device time runs them: each call stands alone (nothing carries over from one call to
# the next but the installed wheels), so a machine lost between calls costs that call only.
#
#   CALL=1 SEQUNET_GIT_COMMIT=$(git rev-parse --short HEAD) CALL_S=575 bash benchmarks/speed_gpu_call.sh OUT
#       device tool: carry [".whl", ".devdata"] (made here by `benchmarks/device_prep.sh tests`), timeout_s 600
#   then CALL=2 to 12, 14, 16 to 22 and 24 to 34 the same way, each as soon as the last has answered (or in another
#   session).
#
# CALL=1  the GPU test suite (benchmarks/gpu_test.sh; 404 s at 94cb339 with 6 workers on an H200, 2026-12-05; an
#         H100 had run 912 of its 1,009 tests after 545 s; 1,061 in 537 s at d4e5af2 on an H100, 2 s inside its
#         limit, before the long tests started first): OUT/gpu-test.log. Where it was cut short, the same call
#         again with GPU_TEST_AFTER=that log (in the checkout) runs the rest: OUT/gpu-test-rest.log.
# CALL=2  the generation benchmark at batches 1, 28 and 64, float32 and bf16, the batch rule's kernels, each
#         launched plainly and with programmatic dependent launch, with a step's bookkeeping in the Triton step
#         kernels and in the torch operations they replaced, side by side (OUT/generation-pdl-GPU.json, about
#         100 s). Then the Seq-U-Net's piano step compiled as the trainer runs it (the Triton lookup on), bf16 and
#         TF32, the first profiled (OUT/piano-step-compiled-lookup-GPU.json and its .profile.txt; compiling takes
#         about 70 s).
# CALL=3  the lookup's table gradient alone at the piano shape for several tiles and both ways of summing a
#         program's positions, beside embedding_bag's backward
#         (benchmarks/lookup_backward.py, OUT/lookup-backward-GPU.json, about 20 s); then
#         the piano step with the Triton lookup of the first convolution on and off, its table's gradient now
#         summed over the positions sorted by id alone (on an H100 at 1c69402 it tied cuBLAS's batched GEMMs and
#         beat the one-hot products by 1.6 ms compiled; results/bench/piano-step-lookup-backward-h100.json):
#         compiled with cuDNN's autotuner (the trainer's compiled path), the Seq-U-Net in bf16 (profiled) and
#         TF32 (OUT/piano-step-lookup-compiled-GPU.json and its .profile.txt; about 60-100 s of compiling a
#         variant), and Inductor's code for them (OUT/inductor-code-call3.tar.gz); then uncompiled, both models
#         (OUT/piano-step-lookup-eager-GPU.json);
#         then the PDL test's diagnosis of the one case where PDL and plain launches differed on the H200 (rowdot
#         at batch 28: is the save pass itself deterministic, and which window slots part first).
# CALL=4  the generation benchmark in bf16 at batches 1 and 64 with multi-step CUDA graphs of 16 (the default), 64
#         and 256 steps side by side (OUT/generation-chunk-GPU.json, 36 s at 94cb339): between two graphs the
#         host copies the next chunk's noise in and the samples out, and the GPU runs the boundary without PDL's
#         overlap, a cost that longer graphs would spread over more steps. They did not pay
#         (results/bench/generation-chunk-h200.json).
# CALL=5  the generation benchmark in bf16 and float32 at batches 1 and 64 with each step's start in its own launch
#         and run by the head kernel of the step before (SEQUNET_START_IN_HEAD=1: one launch fewer a step in a
#         multi-step graph), side by side (OUT/generation-start-in-head-GPU.json). It changed library kernels, so
#         call 1's suite (which tests it against the start's own launch) comes first.
# CALL=6  call 2's compiled piano steps (the lookup with the library's backward) with cuDNN's autotuner on, the
#         TF32 one profiled (OUT/piano-step-cudnn-benchmark-GPU.json and its .profile.txt: the trainer leaves the
#         autotuner off for audio since an H100 measurement in which it sped nothing up, before bf16, padding and
#         compiling); then the Seq-U-Net's step in Inductor's max-autotune mode, which compiles for minutes
#         (OUT/piano-step-autotune-GPU.json), with the time left.
# CALL=7  the convolutions' weight gradients by cuBLAS's batched products (mm_wgrad, sequnet.core.models.weight_grad)
#         against cuDNN's in bf16, the trainer's precision for the piano models. In TF32 (H100, 87bf3d0,
#         2026-12-06: results/bench/piano-step-mm-wgrad-*-h100.json) they were slower for the Seq-U-Net and 37 %
#         faster for WaveNet uncompiled; the bf16 variants failed there in the FLOP count (mended in b58fde0).
#         Each compiled variant in a process of its own (models compiled after another had run slower: the cause,
#         found by call 9, was cuDNN's heuristic plans, fixed by the FLOP count in every process). The Seq-U-Net
#         compiled with cuDNN's autotuner (the trainer's compiled path), with the products (profiled) and without
#         (OUT/piano-step-mm-wgrad-bf16-compiled-GPU.json, -cudnn-GPU.json);
#         both models uncompiled, in one process (OUT/piano-step-mm-wgrad-bf16-eager-GPU.json); WaveNet compiled,
#         each way (OUT/piano-step-mm-wgrad-bf16-wavenet-compiled-GPU.json, -cudnn-GPU.json). Most valuable
#         first: a short call keeps the pairs.
# CALL=8  the fast step's numerics against the plain float32 model (benchmarks/step_numerics.py): both models
#         uncompiled, then the Seq-U-Net compiled, each with cuDNN's weight gradients and the products', in TF32
#         and bf16 (OUT/step-numerics-GPU.json, OUT/step-numerics-compiled-GPU.json).
# CALL=9  the compiled bf16 piano steps at an older commit and at this one, alternately, each in a process of its
#         own on one machine: at e58693b (H100, 2026-12-06) compiled WaveNet took 125.03 ms and the Seq-U-Net 29.83,
#         against 93.47 and 26.95 at 3c7b693 on the H100 of 2026-12-05, while the uncompiled steps matched; is it
#         the code or the machine? AB_OLD=COMMIT names the older tree, made here and carried:
#             mkdir -p .ab/COMMIT && git archive COMMIT sequnet benchmarks | tar x -C .ab/COMMIT
#         (carry [".whl", ".devdata", ".ab"]; AB_TREE=DIR points elsewhere). WaveNet first, profiled, at COMMIT, at
#         this commit, and at this commit with the float32 matmul precision set first, as benchmarks/piano_step.py
#         did for every variant at 87bf3d0 and e58693b (OUT/piano-step-ab-wavenet-{COMMIT,head,head-set}-GPU.json);
#         then the Seq-U-Net at COMMIT and at this commit (OUT/piano-step-ab-sequnet-{COMMIT,head}-GPU.json). The
#         profiles and Inductor's code: OUT/call9-profiles-and-code.tar.gz. Found (H100, 4f6b1c1): the code's, in
#         the benchmark. WaveNet took 94.02 ms at 3c7b693 and 124.54 at 4f6b1c1 (124.53 with the precision set), the
#         Seq-U-Net 26.99 and 30.06: since 854c29b piano_step.py turned the autotuner on after the FLOP count,
#         whose convolutions had fixed cuDNN's plans by its heuristics (piano_step.check_autotuner says why).
# CALL=10 cuDNN's autotuner on and off, each variant in a process of its own (--append gathers them in
#         OUT/piano-step-autotuner-GPU.json): every earlier "with and without" pair had shared a process, so its
#         second variant ran the first one's plans. bf16 uncompiled (the piano run's path): the Seq-U-Net, WaveNet
#         with cuDNN's weight gradients and with the products' (the trainer's uncompiled WaveNet, chosen over
#         cuDNN's heuristic plans); then the compiled bf16 steps with it, as the trainer compiles them (the fix
#         checked: 26.95 and 93.51 ms on the H100 of 2026-12-05); then the float32 (TF32) pairs uncompiled.
# CALL=11 the weight gradients by weight_grad's Triton kernel (kernel="triton"; first run at 932025f, H100: slower
#         than cuDNN's autotuned plans everywhere, results/bench/weight-grad-kernels-h100.json): every
#         convolution geometry of both piano models alone, cuDNN's (autotuned), the products' and the kernel's at
#         several tiles, TF32 and bf16, each checked against cuDNN's (benchmarks/weight_grad_kernels.py,
#         OUT/weight-grad-kernels-GPU.json); then, each in a process of its own (OUT/piano-step-triton-wgrad-GPU.json),
#         the compiled TF32 Seq-U-Net step with it and with cuDNN's (the 45 ms target; cuDNN's weight gradients took
#         19.5 of its 59.3 ms) and WaveNet uncompiled in bf16 with it and with the products (then the trainer's).
#         Between them, the lookup's backward
#         in float32 by tile (OUT/lookup-backward-fp32-GPU.json).
# CALL=12 the lookup's backward with its positions sorted by id within chunks (id_lookup.CHUNK) against all at
#         once (sort_all, the kernel until 2026-12-06, 2.25 ms of the compiled bf16 Seq-U-Net step on an H100):
#         alone, bf16, on synthetic and the piano audio's ids, by chunk (OUT/lookup-backward-chunks-GPU.json);
#         then Inductor's coordinate-descent tuning of its own kernels (piano_step.py's "coord"): the compiled bf16
#         steps with the autotuner as the trainer runs them, each in a process of its own: the Seq-U-Net (the 25 ms
#         target: 26.83 ms on the H100 of 932025f, where Inductor's elementwise and reduction kernels took 8.8 ms
#         of a step on 2026-12-05) with chunks, sorted all at once, and with chunks and coord; WaveNet the same,
#         sort_all last (OUT/piano-step-coord-GPU.json).
# CALL=13 and 15 (the lookup's taps gathered together, 2026-12-06) were removed with that kernel: their log is
#         results/logs/2026-12-06f-h100-suite-taps-compile-loss.tar.xz.
# CALL=14 the model and the loss compiled as one function (piano_step.py's compile_loss: Inductor fuses the
#         logits' cast to float32, the softmax and the loss, forward and backward; the trainer's --compile since
#         2026-12-06, after call 15 timed the bf16 Seq-U-Net at 25.04-25.11 ms with it, 25.76-25.82 without), each in
#         a process of its own: the bf16 Seq-U-Net with it (profiled: each copy by its caller; the 0.14 ms copy of
#         the logits' shape came from the benchmarks' loss, which 1d653c3 made the trainer's), WaveNet with it,
#         the TF32 Seq-U-Net with it (the 45 ms target: 59.38 ms at 932025f, the model compiled alone, before the
#         lookup's chunks), then the Seq-U-Net and WaveNet without it as time allows
#         (OUT/piano-step-compile-loss-GPU.json and its .profile.txt; the first variant's Inductor code in
#         OUT/inductor-code-call14.tar.gz).
# CALL=16 Inductor's and AOT autograd's settings for the compiled bf16 Seq-U-Net step as the trainer runs it (the
#         loss compiled too; 25.04-25.11 ms on an H100 at 6d3a360, its Inductor kernels 8.9 ms near the memory's
#         speed), each in a process of its own: none, aggressive fusion, an activation memory budget of 0.5 (more
#         recomputation, fewer bytes saved), loop reordering after fusion, fusion decisions benchmarked, none again
#         (OUT/piano-step-compiler-settings-GPU.json).
# CALL=17 the gaps between the kernels of the compiled bf16 Seq-U-Net step: replayed from its CUDA graph it took
#         25.28 ms on an H100 at 625a654 where its 750 kernels ran for 24.72 ms (profiled without the graph), and
#         461 of them are Inductor's. Each in a process of its own: none, Inductor's kernels launched with
#         programmatic dependent launch (each may start while the one before it ends; 24.98 -> 24.63 ms on an H100
#         at 5c74b36, one process each, the first two variants of a call cut short), WaveNet without and with it,
#         the Seq-U-Net again without and with it, then Inductor's combo kernels (independent kernels fused into
#         one launch) if time is left (OUT/piano-step-launch-gaps-GPU.json, committed from 497c612 as
#         piano-step-pdl-h100.json, a name short enough for the book's tables). At 497c612 on an H100 both models
#         gained (Seq-U-Net 24.89/25.06 -> 24.50/24.43 ms, WaveNet 93.15 -> 92.48; combo kernels 24.61), so the
#         trainer took PDL up (results/bench/piano-step-pdl-h100.json).
# CALL=18 the lookup's table gradient with its pieces' sums stored and added class by class in a second kernel
#         (id_lookup.REDUCE = "partials": no atomic adds, the same bits every run) against the atomic adds: alone
#         at the piano shape in chunks of 16,384, both layouts, synthetic and the piano audio's ids
#         (OUT/lookup-backward-reduce-GPU.json); then the compiled bf16 Seq-U-Net step without and with it,
#         alternated, and WaveNet with and without it, each in a process of its own
#         (OUT/piano-step-lookup-reduce-GPU.json). A tie at 497c612 on an H100 (results/bench/*-reduce-h100.json).
# CALL=19 the trainer's compiled bf16 steps as it runs them since 497c612 (Inductor's kernels with programmatic
#         dependent launch), the Seq-U-Net and WaveNet each without and with Inductor's combo kernels, each in a
#         process of its own (OUT/piano-step-combo-GPU.json). Each variant compiles afresh, about 80-100 s for the
#         Seq-U-Net, hence the bounds. On an H100 at 910499d (results/bench/piano-step-combo-h100.json) they took
#         24.34 / 24.10 ms and 91.74 / 91.45 ms, and the trainer has used them since. Until 2026-12-07 the call
#         profiled the TF32 Seq-U-Net first: with PDL it took 56.84 ms on an H100 at 2c0e1db
#         (results/bench/piano-step-tf32-pdl-h100.json, its profile in
#         results/logs/2026-12-07b-h100-suite-splitk-default-tf32-pdl.tar.xz), and its 140 s left the bf16 variants
#         too little of the call.
# CALL=20 the compiled TF32 steps of both models (WaveNet's never timed compiled in TF32, so the pair has no TF32
#         ratio) as the trainer runs them (with PDL), each channels-last (the trainer's layout, chosen on an H200
#         uncompiled before bf16 and compiling) and channels-first, each in a process of its own
#         (OUT/piano-step-tf32-layouts-GPU.json).
# CALL=21 the generation benchmark in bf16 at batches 64 (883,830 samples/s on an H100 at 3c7b693 against a
#         1,000,000 target) and 28 (the piano run's) with split-K's tile (rows of W and output columns a program)
#         at the default 64x64 and five others, both models, side by side (OUT/generation-splitk-tiles-GPU.json):
#         at batch 64 the Seq-U-Net's layers run about 90 programs of 64x64 on the H100's 132 multiprocessors.
#         At 786c915 on an H100 no tile suited both models (results/bench/generation-splitk-tiles-h100.json).
# CALL=22 the generation benchmark in bf16 at batches 64, 28 and 8 with split-K's tile chosen per product by its
#         shape (splitk.tile_for's rule: fewest splits that still run 48 programs), beside the fixed 64x64 (the
#         default), 128x64 and 32x32 (each the fastest for one model in call 21) and 128x32 (never timed), both
#         models (OUT/generation-splitk-rule-GPU.json). Then batch 1 in bf16 (46,750 samples/s on an H100 at
#         3c7b693 against a 50,000 target) with rowdot's element-wise tile at least 64 programs (the default: the
#         Seq-U-Net's gated layers run 90 of 2 columns), 32 (45 of 4) and 128 (180 of 1), both models
#         (OUT/generation-rowdot-programs-GPU.json). It changed how split-K launches, so call 1's suite comes first.
# CALL=23 (cuDNN with the convolutions presented with time on the height axis, 2026-12-07) was removed with that
#         switch, which was no faster: its log is in results/logs/2026-12-07-h100-suite-splitk-rule-time-h.tar.xz.
# CALL=24 the generation benchmark in bf16 at batches 8, 28 and 64 with split-K's tile by the rule as the default
#         since 71df65a (at batch 8 and below, where the products run element-wise, it chooses between 128x64 and
#         64x64 only: at 61c99ab the rule's narrower tiles made WaveNet 13 % slower there), beside the fixed 64x64
#         and 128x64, both models (OUT/generation-splitk-default-GPU.json). It changed the default tile, so call 1's
#         suite comes first. On an H100 at 2c0e1db the rule was the fastest of the three for both models at every
#         batch (results/bench/generation-splitk-default-h100.json).
# CALL=25 a layer's cost between its neighbours at batch 1's shape: a chain of 11 and of 64 small layers, 512 and
#         1,024 wide, launched one kernel a layer (with PDL and without) against one persistent kernel whose 64 or
#         128 programs meet at a grid barrier between layers (benchmarks/grid_barrier.py,
#         OUT/grid-barrier-GPU.json, under a minute; its GPU test comes with call 1's suite). If the barrier costs
#         well under a launch's 1.9 us, a persistent generation step could reach issue 16's 50,000 samples/s at
#         batch 1. Then generation at batch 1, both models, on the same machine, to set beside it
#         (OUT/generation-batch1-GPU.json). A dry run has no Triton to run the chain with, so it skips it. Then
#         cuDNN's weight gradients of both piano models layer by layer, bf16 and TF32, from the channels-last
#         activations the trainer has and from channels-first copies (made before the timing, and within it):
#         Hopper's wgmma takes TF32 operands only with the reduction's axis contiguous, which for a weight gradient
#         is the positions' (benchmarks/weight_grad_kernels.py, OUT/weight-grad-layouts-GPU.json).
# CALL=26 the compiled TF32 steps as the trainer runs them (PDL and combo kernels), the Seq-U-Net then WaveNet, each
#         with cuDNN's weight gradients from channels-first copies of the operands (piano_step.py's cf_wgrad; the
#         first profiled) and as they are, each in a process of its own (OUT/piano-step-tf32-cf-wgrad-GPU.json and
#         its .profile.txt). Not run: call 25's layers alone (H100, c7033da,
#         results/bench/weight-grad-layouts-h100.json) were slower from channels-first copies in every case, even with
#         the copies made before the timing (the TF32 Seq-U-Net's 18.50 ms against 24.96).
# CALL=27 generation in bf16 at batches 1 and 64, both models, with each step's start where the library puts it (in
#         the head kernel before it, in bf16) and in its own launch, split-K's tiles by the rule and 128x64 (OUT/
#         generation-start-default-GPU.json). Until 9f67a62 the benchmark's default put the start in its own launch,
#         so every generation figure since 6855018 made the head the library's default in bf16 (calls 21, 22, 24,
#         25) timed that, not the library's default. On an H100 at 9f67a62 (results/bench/
#         generation-start-default-h100.json) the head gained 1.8 % for the Seq-U-Net at batch 1 and 2.0 % at 64.
# CALL=28 generation in bf16 at batches 1 and 64, both models, as the library runs it, then 1,024 more steps of each
#         profiled kernel by kernel (generation.py --profile-steps, benchmarks/kernel_trace.py: each kernel's
#         duration by name and grid, the GPU's busy time against the steps' span; OUT/generation-profile-GPU.json):
#         where a step's 21.6 us at batch 1 (11.1 launches) and 66.8 us at batch 64 (22.0) go, kernels or gaps. On
#         an H100 at 78f6079 (results/bench/generation-profile-h100.json) the GPU was busy 95-99 % of each step.
# CALL=29 generation in bf16 at batches 1 and 64, both models, three ways, each in a process of its own: as the
#         library runs it since call 28 (split-K's activation unrolls its loop over the partial sums, so that their
#         loads are in flight together; the timed steps start where a multi-step graph does), profiled
#         (OUT/generation-unrolled-GPU.json); the activation's loop not unrolled (SEQUNET_SPLITS_UNROLLED=0,
#         OUT/generation-rolled-GPU.json); and the timed steps one short of a graph, as every run before call 29
#         (--unaligned, OUT/generation-unaligned-GPU.json). Call 28's profile found split-K's activations 4.1 us
#         each at batch 64, 9 of a step's 22 kernels, and 16 of each 2,048 timed steps replaying one-step graphs.
#         It changed a library kernel, so call 1's suite comes first. On an H100 at 8025e91 the Seq-U-Net made
#         1,026,940 samples/s at batch 64 unrolled against 980,690 in the loop, WaveNet 189,174 against 170,640.
# CALL=30 generation in bf16 at batches 1 and 64, both models, from an older tree and from this one, alternately,
#         twice, each in a process of its own (AB_OLD=COMMIT, the tree made and carried as for call 9; OUT/
#         generation-ab-{COMMIT,head}-{1,2}-GPU.json, this tree's first profiled): a change to the step kernels
#         timed against what it replaced on one machine, where H100s have differed by 3 %. Made for the head's
#         tail at batch 1, which call 28's profile put at 5.46 us against 2.86 for a layer kernel: the last program
#         to finish samples, then loaded the next step's input taps one trip to the L2 cache after another, and
#         every program read each shift's descriptor though at batch 1 six of its 64 have a run to copy. On an H100
#         at 2daef2c against 3e48ea2 (results/bench/generation-ab-2daef2c-*-h100.json): the Seq-U-Net at batch 1
#         50,792 and 50,762 samples/s against 46,350 and 46,402; WaveNet 6,761 and 6,863 against 6,164 twice.
# CALL=31 the TF32 weight gradients by weight_grad's Triton kernel as rebuilt on 2026-12-07 (every tap in one
#         program, the tiles written to shared memory transposed so that wgmma takes them, no division, each
#         sequence cut into shares that fill whole waves): every float32 convolution geometry of both piano models
#         alone by tile, warps and stages, beside cuDNN's autotuned plans, which reached at most 157 TFLOP/s a layer
#         on an H100 (benchmarks/weight_grad_kernels.py, OUT/weight-grad-tf32-kernel-GPU.json); then the compiled
#         TF32 Seq-U-Net step as the trainer runs it (the 45 ms target: 56.25 ms at 910499d, cuDNN's weight
#         gradients 19.3 ms of it) with the kernel (profiled), with cuDNN's, and with the kernel again, each in a
#         process of its own (OUT/piano-step-tf32-triton-wgrad-GPU.json and its .profile.txt).
# CALL=32 the Triton weight gradient on channels-first copies (triton_cf) against channels-last operands and cuDNN,
#         the Seq-U-Net's TF32 layers at the kernel's default tile (OUT/weight-grad-tf32-cf-GPU.json): what the
#         transposing loads cost. Then the compiled TF32 Seq-U-Net step with its convolutions' backward through
#         sequnet.core.models.conv_grads and its gates recomputed in the backward pass (layers.conv_gate; the words
#         conv_grads_op recompute_gate), profiled, then without either (the trainer's), with the operator only and
#         with the recomputation only, each in a process of its own (OUT/piano-step-conv-grads-gate-tf32-GPU.json
#         and its .profile.txt; Inductor's code: OUT/inductor-code-call32.tar.gz). At e0ff3ff (H100) the step took
#         54.09 ms with both against 56.68 without.
# CALL=33 the compiled bf16 steps (the trainer's precision for the piano run) with both and without either: the
#         Seq-U-Net (OUT/piano-step-conv-grads-gate-bf16-GPU.json; at e0ff3ff, with the gates then float32, 29.47
#         against 24.35 ms: the bias's dtype, mended in ff08a47), then WaveNet
#         (OUT/piano-step-conv-grads-gate-wavenet-bf16-GPU.json). At d4e5af2 (H100) the Seq-U-Net with both and
#         WaveNet without ran past their limits compiling, and were typed again on the same machine: the Seq-U-Net
#         24.18 ms as trained, 24.25 with the operator, 27.92 with the gates recomputed, 28.15 with both; WaveNet
#         91.94 and 99.68 (results/bench/piano-step-conv-grads-gate-*-d4e5af2-h100.json).
# CALL=34 the same pair for WaveNet in TF32, the plain step first
#         (OUT/piano-step-conv-grads-gate-wavenet-fp32-GPU.json). At dc7d64c (H100) the step with both took
#         196.73 ms; the plain one ran past its 150 s while compiling (250.23-252.76 ms on two other H100s).
# CALL=35 (the TF32 weight gradients by cuBLAS's products of channels-first copies, alone and in the compiled
#         Seq-U-Net step, at dc7d64c) was removed with that way, which lost to cuDNN's: its log is in
#         results/logs/2026-12-07j-h100-suite-products-cf-wavenet-tf32.tar.xz.
# At 1ead015 (2026-12-05) call 2's generation benchmark, with split-K in one launch beside the rule's kernels, ran
# past its bound (its log: results/logs/2026-12-05-h200-pdl-and-splitk1.tar.xz); that split-K was then removed and
# the comparison above ran on its own (results/bench/generation-pdl-h200.json).
# GPU in a file's name is the card that wrote it, h100 or h200 (cpu in a dry run), so no file needs renaming.
# Each step is bounded so that the call ends within CALL_S (default 570) with what it has; the tool kills a call at
# 600 s, and its machine with it. A step that fails or runs out of time makes the exit status 4 (the rest still
# runs); 1: the wheels could not be installed. Then, on a CPU here, copy the JSON under results/bench/ after
# reading it, render the published chapters' tables of it again (python -m sequnet.publish.rerender complexity
# generation; a test fails until they show it), and commit it with the chapters, the call's log and the suite's.
# QUICK=1 makes a dry run on a CPU (no suite, no compiled variants; the benchmarks' --quick shapes, tiny generation
# models) in about a minute a call.
set -u
out=${1:?usage: benchmarks/speed_gpu_call.sh OUT}
call_s=${CALL_S:-570}
mkdir -p "$out"
log=$out/speed_gpu_call.log
export PYTHONPATH=$PWD:/tmp/site SEQUNET_DATA_MIRROR=${SEQUNET_DATA_MIRROR:-$PWD/.devdata}
. "$(dirname "${BASH_SOURCE[0]}")/device_wheels.sh"
device_wheels python3 soundfile mido >>"$log" 2>&1 ||     # the suite installs its own (gpu_test.sh)
    { echo "installing .whl/ failed (see $log)" >&2; exit 1; }
{ echo "call ${CALL:-1} at $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit ${SEQUNET_GIT_COMMIT:-unknown}"
  # the clocks and power limit too: calls on two machines of one kind are compared only where these agree
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv,noheader \
      2>/dev/null; } | tee -a "$log"
status=0

# step NAME LIMIT COMMAND...: run COMMAND for at most LIMIT seconds (and never past CALL_S less 15 s), logging it
step() {
    local name=$1 limit=$2 start=$SECONDS left=$((call_s - SECONDS - 15)) rc=0; shift 2
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 30 ]; then echo "$name: skipped, $left s left" | tee -a "$log"; status=4; return; fi
    timeout "$limit" "$@" >>"$log" 2>&1 || rc=$?
    [ $rc = 0 ] || status=4
    echo "$name: $((SECONDS - start)) s of at most $limit, exit $rc" | tee -a "$log"
}
# inductor_code CACHE TARBALL: the graph modules Inductor wrote under CACHE, as TARBALL (at most 15 MiB)
inductor_code() {
    local files
    files=$(cd "$1" 2>/dev/null && grep -rlE --include='*.py' 'def call\((self, )?args\)' . | sort)
    if [ -z "$files" ]; then echo "Inductor code: none under $1" | tee -a "$log"; return; fi
    # shellcheck disable=SC2086  # one path a word
    tar czf "$2" -C "$1" $files
    if [ "$(stat -c %s "$2")" -gt $((15 << 20)) ]; then
        rm -f "$2"; echo "Inductor code: over 15 MiB, left out" | tee -a "$log"
    else echo "Inductor code: $(echo "$files" | wc -l) graph modules, $(stat -c %s "$2") bytes" | tee -a "$log"; fi
}
quick=()
[ "${QUICK:-0}" = 1 ] && quick=(--device cpu --quick)
# alone VARIANT LIMIT: one piano-step variant in a process of its own, its row added to $f (--append)
alone() { step "$1" "$2" python3 benchmarks/piano_step.py "${quick[@]}" --profile-steps 0 --append --out "$f" \
              --variants "$1"; }
# profiled VARIANT LIMIT: the same with 3 steps profiled beside $f (call it first: the file's first process writes
# the profile, and --append leaves it alone)
profiled() { step "$1" "$2" python3 benchmarks/piano_step.py "${quick[@]}" --profile-steps 3 --append --out "$f" \
                 --variants "$1"; }
# older_tree SCRIPT: old=AB_OLD and tree=its folder (AB_TREE, else .ab/AB_OLD), which must hold sequnet/ and
# benchmarks/SCRIPT; else the call stops, naming how to make it (calls 9 and 30)
older_tree() {
    old=${AB_OLD:?CALL=${CALL:-1} needs AB_OLD=COMMIT (the older tree under .ab/COMMIT, or AB_TREE=DIR)}
    tree=${AB_TREE:-.ab/$old}
    [ -f "$tree/benchmarks/$1" ] && [ -d "$tree/sequnet" ] ||
        { echo "CALL=${CALL:-1}: no $tree/benchmarks/$1 and $tree/sequnet; make them here with" \
               "mkdir -p .ab/$old && git archive $old sequnet benchmarks | tar x -C .ab/$old, and carry .ab" >&2
          exit 2; }
}
# sweep NAME FILE "BATCHES" ARG...: the generation benchmark in bf16 (graphs, both models), its variants by the ARGs
sweep() {
    local name=$1 file=$2 batches=$3; shift 3
    # shellcheck disable=SC2046,SC2086  # --tiny: the dry run's models; a batch a word
    step "$name" 300 python3 benchmarks/generation.py "${quick[@]}" $([ "${QUICK:-0}" = 1 ] && echo --tiny) \
        --models sequnet wavenet --batches $batches --modes graphs --dtypes bfloat16 --repeats 3 --cycles 2 \
        --accuracy-steps 0 --out "$file" "$@"
}
# the output files are named by the GPU that wrote them (h100, h200; cpu in a dry run without one)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | grep -oiE 'H[0-9]{3}' | head -1 \
    | tr 'A-Z' 'a-z')
gpu=${gpu:-cpu}
# a dry run runs on the CPU (--device cpu) wherever it is started: on the GPU machine (the suite's dry-run test,
# 2026-12-05) its files were named h100 and the test found none
[ "${QUICK:-0}" = 1 ] && gpu=cpu

# the trainer's compiled bf16 piano steps (the loss compiled with the model) that calls 16 to 18 vary, as they were
# until 497c612: since then the trainer also launches Inductor's kernels with programmatic dependent launch on an
# H100 or H200 (call 17's inductor.triton.enable_pdl=True word). A dry run compiles nothing, so there they are the
# uncompiled steps (and the compiler's settings are left out): so are the words below that calls 17 to 20 add
compiled=" compile compile_loss" pdl=" inductor.triton.enable_pdl=True" combo=" inductor.combo_kernels=True"
[ "${QUICK:-0}" = 1 ] && compiled="" pdl="" combo=""
trainer_s="sequnet bf16 pad=64$compiled lookup cudnn_benchmark"
trainer_w="wavenet bf16 crop$compiled lookup cudnn_benchmark"

case ${CALL:-1} in
    1)
        if [ "${QUICK:-0}" = 1 ]; then echo "GPU suite: skipped in a dry run" | tee -a "$log"; else
            # pytest is interrupted 45 s before the call's end, so that its summary and slowest tests are logged;
            # GPU_TEST_AFTER (an earlier call's log) runs what that call did not reach, into gpu-test-rest.log
            suite_log=$out/gpu-test${GPU_TEST_AFTER:+-rest}.log
            export GPU_TEST_LIMIT_S=${GPU_TEST_LIMIT_S:-$((call_s - SECONDS - 45))}
            step "GPU suite" 600 bash benchmarks/gpu_test.sh "$suite_log"   # its own log
            tail -2 "$suite_log"
        fi ;;
    2)
        # shellcheck disable=SC2046  # --tiny: the dry run's models
        step "generation with and without PDL" 220 python3 benchmarks/generation.py "${quick[@]}" \
            $([ "${QUICK:-0}" = 1 ] && echo --tiny) --models sequnet wavenet --batches 1 28 64 --kernels auto \
            --pdl off on --step-kernels on off --modes graphs --dtypes float32 bfloat16 --repeats 2 --cycles 1 \
            --accuracy-steps 0 --out "$out/generation-pdl-$gpu.json"
        c=" compile"; [ "${QUICK:-0}" = 1 ] && c=""
        step "piano step compiled" 330 python3 benchmarks/piano_step.py "${quick[@]}" \
            --out "$out/piano-step-compiled-lookup-$gpu.json" --variants "sequnet bf16 pad=64$c lookup" \
            "sequnet fp32 pad=64$c lookup" ;;
    3)
        # The lookup, with its sorted backward, on and off in each mode: whether the trainer's rule (on everywhere
        # since an H100 at 3c7b693, compiled float32 included) holds on this GPU. bf16 with the lookup and float32
        # without it come first, since on an H100 at 1c69402 the fourth variant had not compiled when the step's
        # bound struck
        # first the lookup's backward alone by tile and way of summing (its kernel took 2.25 ms of the H100's
        # compiled bf16 step; 1.42 ms at the best tile alone, about 0.8 of the 3.35 TB/s)
        [ "${QUICK:-0}" = 1 ] || step "the lookup's backward by tile" 60 python3 benchmarks/lookup_backward.py \
            --out "$out/lookup-backward-$gpu.json"
        c=" compile"; [ "${QUICK:-0}" = 1 ] && c=""
        cb=" cudnn_benchmark"      # as the trainer runs compiled audio steps since 5b070d9
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call3
        step "piano step compiled, the lookup on and off" 400 python3 benchmarks/piano_step.py "${quick[@]}" \
            --out "$out/piano-step-lookup-compiled-$gpu.json" --variants "sequnet bf16 pad=64$c lookup$cb" \
            "sequnet fp32 pad=64$c$cb" "sequnet fp32 pad=64$c lookup$cb" "sequnet bf16 pad=64$c$cb"
        # Inductor's code for those steps (each graph's module, its kernels' source inline), to read on a CPU how
        # its fused kernels walk the channels-last tensors: they took about 9 ms of the 30 ms bf16 step
        inductor_code "$TORCHINDUCTOR_CACHE_DIR" "$out/inductor-code-call3.tar.gz"
        step "piano step uncompiled, the lookup on and off" 100 python3 benchmarks/piano_step.py "${quick[@]}" \
            --profile-steps 0 --out "$out/piano-step-lookup-eager-$gpu.json" --variants "sequnet bf16 pad=64" \
            "sequnet bf16 pad=64 lookup" "sequnet fp32 pad=64" "sequnet fp32 pad=64 lookup" "wavenet bf16 crop" \
            "wavenet bf16 crop lookup"
        # the rowdot/PDL difference at batch 28, seen on the H200 only (an H100 gave the same bits both ways): where
        # it starts (its test's warning)
        pdl_case="tests/test_generation_cuda.py::test_programmatic_dependent_launch_gives_the_same_samples"
        [ "${QUICK:-0}" = 1 ] || [ "$gpu" != h200 ] || step "PDL diagnosis" 120 python3 -m pytest -q \
            -p no:cacheprovider -rxX "$pdl_case[sequnet-28-rowdot]" ;;
    4)
        # shellcheck disable=SC2046  # --tiny: the dry run's models
        step "generation by graph length" 250 python3 benchmarks/generation.py "${quick[@]}" \
            $([ "${QUICK:-0}" = 1 ] && echo --tiny) --models sequnet wavenet --batches 1 64 --modes graphs \
            --dtypes bfloat16 --chunk 16 64 256 --repeats 2 --cycles 2 --accuracy-steps 0 \
            --out "$out/generation-chunk-$gpu.json" ;;
    5)
        # shellcheck disable=SC2046  # --tiny: the dry run's models
        step "generation with the start in the head" 200 python3 benchmarks/generation.py "${quick[@]}" \
            $([ "${QUICK:-0}" = 1 ] && echo --tiny) --models sequnet wavenet --batches 1 64 --modes graphs \
            --dtypes bfloat16 float32 --step-kernels own head --repeats 3 --cycles 2 --accuracy-steps 0 \
            --out "$out/generation-start-in-head-$gpu.json" ;;
    6)
        c=" compile"; [ "${QUICK:-0}" = 1 ] && c=""
        # TF32 first, profiled: its step (58.6 ms against a 45 ms target) has not been taken apart yet
        step "piano step with cuDNN's autotuner" 260 python3 benchmarks/piano_step.py "${quick[@]}" \
            --out "$out/piano-step-cudnn-benchmark-$gpu.json" \
            --variants "sequnet fp32 pad=64$c lookup cudnn_benchmark" "sequnet bf16 pad=64$c lookup cudnn_benchmark"
        [ "${QUICK:-0}" = 1 ] || step "piano step autotuned" 420 python3 benchmarks/piano_step.py \
            --profile-steps 0 --out "$out/piano-step-autotune-$gpu.json" \
            --variants "sequnet bf16 pad=64 autotune lookup" ;;
    7)
        c=" compile"; [ "${QUICK:-0}" = 1 ] && c=""
        cb=" cudnn_benchmark"
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call7
        step "bf16 Seq-U-Net compiled, weight gradients by products" 120 python3 benchmarks/piano_step.py \
            "${quick[@]}" --out "$out/piano-step-mm-wgrad-bf16-compiled-$gpu.json" \
            --variants "sequnet bf16 pad=64$c lookup$cb mm_wgrad"
        step "bf16 Seq-U-Net compiled, weight gradients by cuDNN" 120 python3 benchmarks/piano_step.py \
            "${quick[@]}" --profile-steps 0 --out "$out/piano-step-mm-wgrad-bf16-compiled-cudnn-$gpu.json" \
            --variants "sequnet bf16 pad=64$c lookup$cb"
        step "bf16 piano step uncompiled, weight gradients by products and by cuDNN" 120 python3 \
            benchmarks/piano_step.py "${quick[@]}" --profile-steps 0 \
            --out "$out/piano-step-mm-wgrad-bf16-eager-$gpu.json" --variants "sequnet bf16 pad=64 lookup mm_wgrad" \
            "sequnet bf16 pad=64 lookup" "wavenet bf16 crop lookup mm_wgrad" "wavenet bf16 crop lookup"
        for way in mm cudnn; do
            [ "${QUICK:-0}" = 1 ] || step "WaveNet compiled, weight gradients by $way" 150 python3 \
                benchmarks/piano_step.py --profile-steps 0 \
                --out "$out/piano-step-mm-wgrad-bf16-wavenet-compiled$([ $way = cudnn ] && echo -cudnn)-$gpu.json" \
                --variants "wavenet bf16 crop compile lookup$cb$([ $way = mm ] && echo " mm_wgrad")"
        done ;;
    8)
        step "numerics of the fast step, uncompiled" 120 python3 benchmarks/step_numerics.py "${quick[@]}" \
            --compile off --out "$out/step-numerics-$gpu.json"
        [ "${QUICK:-0}" = 1 ] || step "numerics of the fast step, compiled" 300 python3 benchmarks/step_numerics.py \
            --archs sequnet --compile on --out "$out/step-numerics-compiled-$gpu.json" ;;
    9)
        older_tree piano_step.py
        c=" compile"; [ "${QUICK:-0}" = 1 ] && c=""
        # head-set: this tree with the float32 matmul precision set (to its own value) first, as piano_step.py did
        # for every variant at 87bf3d0 and e58693b: the suspect, since it changes torch's state
        set_first="import runpy, sys, torch; torch.set_float32_matmul_precision(torch.get_float32_matmul_precision())"
        set_first+="; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
        for arch in wavenet sequnet; do
            variant="sequnet bf16 pad=64$c lookup cudnn_benchmark" profile=0 sides="old head"
            [ $arch = wavenet ] && variant="wavenet bf16 crop$c lookup cudnn_benchmark" profile=2 \
                sides="old head head-set"
            # each tree's piano_step.py puts its own folder's sequnet first on sys.path; its records say its commit
            for side in $sides; do
                dir=$tree name=$old commit=$old run=(python3)
                [ $side != old ] && dir=. name=$side commit=${SEQUNET_GIT_COMMIT:-unknown}
                [ $side = head-set ] && run=(python3 -c "$set_first")
                TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call9/$arch-$name SEQUNET_GIT_COMMIT=$commit \
                    step "$arch bf16 compiled at $name" 200 "${run[@]}" "$dir/benchmarks/piano_step.py" \
                    "${quick[@]}" --profile-steps $profile --out "$out/piano-step-ab-$arch-$name-$gpu.json" \
                    --variants "$variant"
            done
        done
        # the profiles and Inductor's code in one file: a call brings back at most 8
        rm -f /tmp/inductor-code-call9.tar.gz
        inductor_code /tmp/inductor-call9 /tmp/inductor-code-call9.tar.gz
        pack=$(cd "$out" && ls piano-step-ab-*.profile.txt 2>/dev/null)
        if [ -f /tmp/inductor-code-call9.tar.gz ]; then
            cp /tmp/inductor-code-call9.tar.gz "$out/" && pack+=" inductor-code-call9.tar.gz"
        fi
        # shellcheck disable=SC2086  # one name a word
        [ -n "$pack" ] && (cd "$out" && tar czf call9-profiles-and-code.tar.gz $pack && rm -f $pack) ;;
    10)
        c=" compile" cb=" cudnn_benchmark"; [ "${QUICK:-0}" = 1 ] && c=""
        f=$out/piano-step-autotuner-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call10
        # each pair heuristics first, then the autotuner
        for v in "sequnet bf16 pad=64 lookup" "wavenet bf16 crop lookup" "wavenet bf16 crop lookup mm_wgrad"; do
            alone "$v" 60; alone "$v$cb" 90
        done
        if [ "${QUICK:-0}" != 1 ]; then
            alone "sequnet bf16 pad=64$c lookup$cb" 130; alone "wavenet bf16 crop$c lookup$cb" 180
        fi
        for v in "sequnet fp32 pad=64 lookup" "wavenet fp32 crop lookup mm_wgrad"; do
            alone "$v" 60; alone "$v$cb" 90
        done ;;
    11)
        c=" compile" cb=" cudnn_benchmark"; [ "${QUICK:-0}" = 1 ] && c=""
        # 32 groups of layers, 2 dtypes, 2 + 8 ways: short timings (50 ms each) to fit
        step "the weight gradients alone, three ways" 200 python3 benchmarks/weight_grad_kernels.py "${quick[@]}" \
            --ways products triton --reps 5 --tiles 64x64x64 32x64x64 64x128x64 32x128x128 \
            --out "$out/weight-grad-kernels-$gpu.json"
        # the lookup's backward in float32 by tile (3.3 ms of the TF32 step, its tile chosen in bf16)
        [ "${QUICK:-0}" = 1 ] || step "the lookup's backward in float32 by tile" 45 python3 \
            benchmarks/lookup_backward.py --dtype fp32 --out "$out/lookup-backward-fp32-$gpu.json"
        f=$out/piano-step-triton-wgrad-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call11
        alone "sequnet fp32 pad=64$c lookup$cb triton_wgrad" 150; alone "sequnet fp32 pad=64$c lookup$cb" 150
        alone "wavenet bf16 crop lookup triton_wgrad" 80; alone "wavenet bf16 crop lookup mm_wgrad" 80 ;;
    12)
        [ "${QUICK:-0}" = 1 ] || step "the lookup's backward by chunk" 60 python3 benchmarks/lookup_backward.py \
            --ids synthetic piano --tiles 16x64 --warps 8 --chunks all 4096 16384 65536 \
            --out "$out/lookup-backward-chunks-$gpu.json"
        f=$out/piano-step-coord-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call12
        # a dry run has no compiled variants, and coord needs one: there it times the variants without it
        c=" compile" k=" coord"; [ "${QUICK:-0}" = 1 ] && c="" k=""
        alone "sequnet bf16 pad=64$c lookup cudnn_benchmark" 130
        alone "sequnet bf16 pad=64$c lookup cudnn_benchmark sort_all" 130
        alone "sequnet bf16 pad=64$c lookup cudnn_benchmark$k" 160
        alone "wavenet bf16 crop$c lookup cudnn_benchmark" 180
        alone "wavenet bf16 crop$c lookup cudnn_benchmark$k" 200
        alone "wavenet bf16 crop$c lookup cudnn_benchmark sort_all" 180 ;;
    14)
        f=$out/piano-step-compile-loss-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call14
        # a dry run compiles nothing, and compile_loss needs a compile: there it times the variants without it
        c=" compile" l=" compile_loss"; [ "${QUICK:-0}" = 1 ] && c="" l=""
        s="sequnet bf16 pad=64$c lookup cudnn_benchmark" w="wavenet bf16 crop$c lookup cudnn_benchmark"
        # the first variant profiled (the file's first process writes its profile; --append leaves it alone)
        step "$s$l" 130 python3 benchmarks/piano_step.py "${quick[@]}" --profile-steps 3 --append --out "$f" \
            --variants "$s$l"
        # its Inductor code: the strides it gives each extern convolution's arguments (the copy's suspects)
        inductor_code "$TORCHINDUCTOR_CACHE_DIR" "$out/inductor-code-call14.tar.gz"
        # then the trainer's compiled steps since 2026-12-06 (the loss compiled too), first what a short call
        # (machines were scarce on 2026-12-06) must have: WaveNet in bf16 and the Seq-U-Net in TF32 (the 45 ms
        # target); then each model without the loss, as time allows
        alone "$w$l" 180; alone "sequnet fp32 pad=64$c lookup cudnn_benchmark$l" 130; alone "$s" 110; alone "$w" 150 ;;
    16)
        f=$out/piano-step-compiler-settings-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call16
        s=$trainer_s
        # the settings need a compile: in a dry run each variant is the plain step
        a=" inductor.aggressive_fusion=True" m=" functorch.activation_memory_budget=0.5"
        o=" inductor.loop_ordering_after_fusion=True" b=" inductor.benchmark_fusion=True"
        [ "${QUICK:-0}" = 1 ] && a="" m="" o="" b=""
        alone "$s" 110; alone "$s$a" 110; alone "$s$m" 110; alone "$s$o" 110; alone "$s$b" 140; alone "$s" 90 ;;
    17)
        f=$out/piano-step-launch-gaps-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call17
        s=$trainer_s w=$trainer_w
        alone "$s" 90; alone "$s$pdl" 80; alone "$w" 140; alone "$w$pdl" 140; alone "$s" 50; alone "$s$pdl" 50
        alone "$s$combo" 100 ;;
    18)
        # (a dry run has no Triton to run it: tests/test_kernels_interpreted.py runs it in Triton's interpreter)
        [ "${QUICK:-0}" = 1 ] || step "the lookup's backward, atomic adds and partial sums" 90 python3 \
            benchmarks/lookup_backward.py --ids synthetic piano --layouts channels_first channels_last \
            --tiles 16x64 --warps 8 --chunks 16384 --reduces atomic partials \
            --out "$out/lookup-backward-reduce-$gpu.json"
        f=$out/piano-step-lookup-reduce-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call18
        s=$trainer_s w=$trainer_w
        alone "$s" 90; alone "$s partials" 90; alone "$s" 50; alone "$s partials" 50; alone "$w partials" 140
        alone "$w" 140 ;;
    19)
        f=$out/piano-step-combo-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call19
        s=$trainer_s$pdl w=$trainer_w$pdl
        alone "$s" 120; alone "$s$combo" 130; alone "$w" 150; alone "$w$combo" 150 ;;
    20)
        f=$out/piano-step-tf32-layouts-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call20
        s="sequnet fp32 pad=64$compiled lookup cudnn_benchmark$pdl"
        w="wavenet fp32 crop$compiled lookup cudnn_benchmark$pdl"
        alone "$s" 100; alone "$s channels_first" 100; alone "$w" 160; alone "$w channels_first" 160 ;;
    21) sweep "generation by split-K tile" "$out/generation-splitk-tiles-$gpu.json" "64 28" \
            --splitk-tiles 64x64 32x64 128x64 64x32 64x128 32x32 ;;
    22) sweep "generation by split-K tile rule" "$out/generation-splitk-rule-$gpu.json" "64 28 8" \
            --splitk-tiles 64x64 rule 128x64 32x32 128x32
        sweep "generation at batch 1 by rowdot's programs" "$out/generation-rowdot-programs-$gpu.json" 1 \
            --rowdot-programs 64 32 128 ;;
    24) sweep "generation by split-K's default tile" "$out/generation-splitk-default-$gpu.json" "8 28 64" \
            --splitk-tiles rule 64x64 128x64 ;;
    25)
        if [ "${QUICK:-0}" = 1 ]; then echo "grid barrier: skipped in a dry run (no Triton)" | tee -a "$log"
        else step "grid barrier" 120 python3 benchmarks/grid_barrier.py --out "$out/grid-barrier-$gpu.json"; fi
        sweep "generation at batch 1" "$out/generation-batch1-$gpu.json" 1
        wgrad=(--reps 10)
        [ "${QUICK:-0}" = 1 ] && wgrad=(--reps 1 --batch 2)
        step "weight gradients by layout" 150 python3 benchmarks/weight_grad_kernels.py "${quick[@]}" "${wgrad[@]}" \
            --ways cudnn_cf cudnn_cf_copies --out "$out/weight-grad-layouts-$gpu.json" ;;
    27) sweep "generation with the start where the library puts it" "$out/generation-start-default-$gpu.json" "1 64" \
            --step-kernels on own --splitk-tiles rule 128x64 ;;
    26)
        f=$out/piano-step-tf32-cf-wgrad-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call26
        s="sequnet fp32 pad=64$compiled lookup cudnn_benchmark$pdl$combo"
        w="wavenet fp32 crop$compiled lookup cudnn_benchmark$pdl$combo"
        profiled "$s cf_wgrad" 140; alone "$s" 120; alone "$w cf_wgrad" 160; alone "$w" 160 ;;
    28) sweep "generation profiled kernel by kernel" "$out/generation-profile-$gpu.json" "1 64" --profile-steps 1024 ;;
    29) sweep "generation, split-K's activation unrolled" "$out/generation-unrolled-$gpu.json" "1 64" \
            --profile-steps 1024
        SEQUNET_SPLITS_UNROLLED=0 sweep "generation, split-K's activation in a loop" \
            "$out/generation-rolled-$gpu.json" "1 64"
        sweep "generation, the timed steps one short of a graph" "$out/generation-unaligned-$gpu.json" "1 64" \
            --unaligned ;;
    30)
        older_tree generation.py
        # each tree's generation.py puts its own folder's sequnet first on sys.path; its records say its commit
        for round in 1 2; do
            for side in old head; do
                dir=$tree name=$old commit=$old profile=0
                [ $side = head ] && dir=. name=head commit=${SEQUNET_GIT_COMMIT:-unknown}
                [ $side = head ] && [ $round = 1 ] && profile=1024
                # shellcheck disable=SC2046  # --tiny: the dry run's models
                SEQUNET_GIT_COMMIT=$commit step "generation at $name, round $round" 150 python3 \
                    "$dir/benchmarks/generation.py" "${quick[@]}" $([ "${QUICK:-0}" = 1 ] && echo --tiny) \
                    --models sequnet wavenet --batches 1 64 --modes graphs --dtypes bfloat16 --repeats 3 --cycles 2 \
                    --accuracy-steps 0 --profile-steps $profile --out "$out/generation-ab-$name-$round-$gpu.json"
            done
        done ;;
    31)
        # the kernel's tiles (its stages too: a tile too big for the shared memory is a row saying so) on every
        # float32 geometry of both models, beside cuDNN's autotuned plans; the Seq-U-Net's first
        step "the TF32 weight gradients by the kernel's tiles" 190 python3 benchmarks/weight_grad_kernels.py \
            "${quick[@]}" --dtypes fp32 --ways triton --reps 5 --warps 8 --stages 3 4 \
            --tiles 32x128x32 32x128x64 64x128x32 32x64x64 16x128x32 --out "$out/weight-grad-tf32-kernel-$gpu.json"
        f=$out/piano-step-tf32-triton-wgrad-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call31
        s="sequnet fp32 pad=64$compiled lookup cudnn_benchmark$pdl$combo"
        profiled "$s triton_wgrad" 130; alone "$s" 110; alone "$s triton_wgrad" 110 ;;
    32)
        # the Triton kernel on channels-first copies against channels-last activations, at its default tile
        step "the TF32 weight gradients on channels-first copies" 150 python3 benchmarks/weight_grad_kernels.py \
            "${quick[@]}" --archs sequnet --dtypes fp32 --ways cudnn triton triton_cf --reps 5 --warps 8 \
            --stages 3 --tiles 32x128x64 --out "$out/weight-grad-tf32-cf-$gpu.json"
        f=$out/piano-step-conv-grads-gate-tf32-$gpu.json
        export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-call32
        s="sequnet fp32 pad=64$compiled lookup cudnn_benchmark$pdl$combo"
        # (the profiled process's row is written after its profile: 110 s cut it off at e0ff3ff, row and all)
        profiled "$s conv_grads_op recompute_gate" 150; alone "$s" 95; alone "$s conv_grads_op" 95
        alone "$s recompute_gate" 95
        inductor_code /tmp/inductor-call32 "$out/inductor-code-call32.tar.gz" ;;
    33)
        f=$out/piano-step-conv-grads-gate-bf16-$gpu.json
        s="$trainer_s$pdl$combo"
        alone "$s conv_grads_op recompute_gate" 120; alone "$s" 110
        # WaveNet's compiled step with the recomputed gates ran past 150 s at e0ff3ff (its 52 checkpointed regions)
        f=$out/piano-step-conv-grads-gate-wavenet-bf16-$gpu.json
        s="$trainer_w$pdl$combo"
        alone "$s conv_grads_op recompute_gate" 200; alone "$s" 130 ;;
    34)
        f=$out/piano-step-conv-grads-gate-wavenet-fp32-$gpu.json
        s="wavenet fp32 crop$compiled lookup cudnn_benchmark$pdl$combo"
        # at dc7d64c (H100) the step with both took 196.73 ms and the plain one was still compiling at 150 s: the
        # plain one, the pair's baseline, goes first now
        alone "$s" 240; alone "$s conv_grads_op recompute_gate" 240 ;;
    *) echo "CALL=${CALL}: expected 1 to 12, 14, 16 to 22, 24 to 34" >&2; exit 2 ;;
esac
exit $status
