#!/usr/bin/env bash
# The 2026-12-07 survey: 73 timm models outside edgeprune.models.timm_models.CHECKED, one process each
# (the python on PATH: the project's venv, e.g. PATH=.venv/bin:$PATH).
set -u
cd "$(dirname "$0")/../.."
MODELS="resnet10t regnety_002 densenet121 dpn48b xception41 inception_v3 cspresnet50 selecsls42b gernet_s dla34
hrnet_w18_small skresnet18 resnest14d ecaresnet26t seresnext26d_32x4d gcresnet33ts halonet26t botnet26t_256
lambda_resnet26t coat_lite_tiny pvt_v2_b0 poolformer_s12 efficientformer_l1 resmlp_12_224 mixer_s16_224
deit_tiny_patch16_224 vit_tiny_patch16_224 swin_tiny_patch4_window7_224 crossvit_tiny_240 pit_ti_224
cait_xxs24_224 xcit_nano_12_p16_224 twins_pcpvt_small visformer_tiny gcvit_xxtiny coatnet_nano_rw_224
davit_tiny focalnet_tiny_srf repvit_m0_9 rdnet_tiny mobilenetv2_050 efficientnetv2_rw_t sequencer2d_s
volo_d1_224 res2next50 resnext26ts bat_resnext26ts eca_halonext26ts sebotnet33ts_256 mambaout_femto
hiera_tiny_224 fastvit_mci0 maxvit_nano_rw_256 convnextv2_atto regnetz_b16 nest_tiny convit_tiny ghostnet_050
mobilenetv3_rw hrnet_w18_small_v2 legacy_seresnet18 vgg11 nfnet_l0 cspdarknet53 eva02_tiny_patch14_224 shvit_s1
starnet_s1 efficientvit_l1 test_vit test_efficientnet test_convnext ese_vovnet19b_dw resnetblur18"
for m in $MODELS; do
  timeout 300 python bench/timm-survey/survey.py "$m" 2>/dev/null || echo "{\"name\": \"$m\", \"error\": \"crashed or timed out\"}"
done
# The 2026-12-07 (22:46–22:57 UTC) run (results-2026-12-07-rules.jsonl) added 14 models of the families swept that
# evening, one process each, after the 73 above:
#   for m in cspnext_s cpubone_s0 lowformer_b0 swiftformer_xs csatv2 coat_lite_mini inception_v4 mvitv2_tiny \
#     hieradet_small swinv2_cr_tiny_ns_224 vit_relpos_small_patch16_224 vitamin_small_224 convmixer_768_32 \
#     legacy_xception; do python bench/timm-survey/survey.py $m; done
