"""The VGG-19 encoder both stages use (``vgg``), with its fused convolution + ReLU (``conv_relu``)."""
