"""Deprecated: :mod:`wgfsim.diagnostics` (half-times, initial velocities, fields, curl) and
:mod:`wgfsim.studies` (the mass-transfer study, curl maps, the toy example).  This alias goes in wgfsim 0.3."""


from ..analytic import two_atom_mmd  # noqa: F401
from ..diagnostics import (  # noqa: F401
    _polyfit,
    fit_slopes,
    half_time,
    initial_velocity,
    mode_mass_error,
    separation_over_sigma,
    two_atom_closed_form,
)
from ..fields import curl, field_at, jacobian, relative_curl  # noqa: F401
from ..studies.curl import CURL_FLOWS, plot_curl_maps, toy_example  # noqa: F401
from ..studies.curl import default_curl_setup as _default_curl_setup  # noqa: F401
from ..studies.mass_transfer import (  # noqa: F401
    MassTransferStudy,
    mass_transfer_scenario,
    mass_transfer_study,
    plot_half_times,
)
