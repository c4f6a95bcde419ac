"""Exceptions that carry a message a user can act on.

Every error raised for bad input or a failed simulation derives from :class:`MdxferError`; the
CLI prints its message as one paragraph (no traceback) and exits non-zero.
"""


class MdxferError(Exception):
    """Base class: ``str(err)`` says what happened and what to do."""


class MoleculeError(MdxferError):
    """A SMILES string could not be turned into a 3D molecule."""


class ForceFieldError(MdxferError):
    """The force field does not cover an atom, bond or charge state."""


class BoxError(MdxferError):
    """Molecules could not be packed into the requested cell."""


class ProtocolError(MdxferError):
    """A protocol file or override is invalid."""


class LammpsError(MdxferError):
    """LAMMPS failed (non-zero exit, lost atoms, non-finite energies)."""

    def __init__(self, stage: str, reason: str, log_tail: str = "", workdir: str = ""):
        self.stage, self.reason, self.log_tail, self.workdir = stage, reason, log_tail, workdir
        msg = f"LAMMPS failed in stage '{stage}': {reason}."
        if workdir:
            msg += f" Inputs and log are kept in {workdir}."
        if log_tail:
            msg += "\n--- end of the LAMMPS log ---\n" + log_tail
        super().__init__(msg)

    def __reduce__(self):
        # picklable across process executors (Parsl HTEX): rebuild from the four fields
        return (type(self), (self.stage, self.reason, self.log_tail, self.workdir))


class InputError(MdxferError):
    """A number, a string or a path given by the user is out of range or of the wrong kind."""
