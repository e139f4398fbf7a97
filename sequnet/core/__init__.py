"""The paper itself: the four models (each layer's step-wise update beside its forward pass in ``generation``),
their sizes and receptive fields in closed form, Tables 2 and 3 as named rows, and cached generation.
Imports nothing from the other layers."""
