"""Helpers that connect numpy-side MLP ensembles to the OpenMM-side PMFForce."""
from ._core import MLPEnsemble


def set_ensemble_parameters(force, weights, biases, activation="sigmoid", output_activation="identity"):
    """Set a PMFForce's model from numpy arrays, without writing a file.

    Parameters
    ----------
    force : PMFForce
    weights : list over ensemble members of lists over layers of arrays with shape (out, in)
    biases : list over ensemble members of lists over layers of arrays with shape (out,)
    activation, output_activation : str
        One of identity, tanh, sigmoid, softplus, silu, relu.

    Call ``force.updateParametersInContext(context)`` afterwards to update a live Context.
    """
    ensemble = MLPEnsemble.from_arrays(weights, biases, activation, output_activation)
    force.setModelBytes(ensemble.to_bytes())
    return ensemble
