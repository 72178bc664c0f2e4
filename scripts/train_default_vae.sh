#!/usr/bin/env bash
# Reproduce the packaged β-TCVAE (src/napari_cellstate/core/data/vae_default.*) from seeds, on the synthetic crops.
# Stage 1 learns a disentangled code with the default loss weights (α = γ = 1, β = 6), on one generator call
# (one bank of textures and neighbours, as the first packaged model was trained). Stage 2 fine-tunes it on crops
# from 20 generator calls with the information penalty divided by 4 (α = γ = 0.25, β = 1.5): the latents record
# the nucleus's shape more precisely and keep stage 1's factorisation. Stage 3 finishes with a lower learning
# rate. Every stage is a denoising VAE (--input-noise 0.3, about the camera noise of a standardised crop): the encoder
# sees noisier crops than the decoder must draw, so it reads the nucleus, not pixel noise. About 20 minutes on 2 CPU
# cores.
set -euo pipefail
out=${1:-src/napari_cellstate/core/data/vae_default}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
napari-cellstate train-vae --synthetic --n-crops 12000 --generator-chunk 0 --epochs 10 --batch-size 128 --seed 0 \
    --input-noise 0.3 --out "$work/stage1"
napari-cellstate train-vae --synthetic --n-crops 20000 --epochs 10 --batch-size 128 --seed 1 --lr 5e-4 \
    --alpha 0.25 --beta 1.5 --gamma 0.25 --input-noise 0.3 --start-from "$work/stage1" --out "$work/stage2"
napari-cellstate train-vae --synthetic --n-crops 20000 --epochs 5 --batch-size 128 --seed 2 --lr 1e-4 \
    --alpha 0.25 --beta 1.5 --gamma 0.25 --input-noise 0.3 --start-from "$work/stage2" --out "$out"
