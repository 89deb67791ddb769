"""3D-CNN + ConvLSTM on the demo corpus (the config `fer-jax demo` runs)."""

from fer_jax.demo import demo_config


def get_config():
    return demo_config()
