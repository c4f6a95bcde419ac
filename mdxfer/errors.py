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

    def __init__(
        self,
        stage: str,
        reason: str,
        log_tail: str = "",
        workdir: str = "",
        repeatable: bool = False,
    ):
        self.stage, self.reason, self.log_tail, self.workdir = stage, reason, log_tail, workdir
        #: LAMMPS stopped with an ERROR line that is not an unstable trajectory: the same input
        #: fails the same way again (a damaged data file, an unknown style), so no retry helps.
        self.repeatable = repeatable
        msg = f"LAMMPS failed in stage '{stage}': {reason}."
        if workdir:
            msg += f" Inputs and log are kept in {workdir}."
        if log_tail:
            msg += "\n--- end of the LAMMPS log ---\n" + log_tail
        super().__init__(msg)

    def __reduce__(self):
        # picklable across process executors (Parsl HTEX): rebuild from the four fields
        args = (self.stage, self.reason, self.log_tail, self.workdir, self.repeatable)
        return (type(self), args)


class InputError(MdxferError):
    """A number, a string or a path given by the user is out of range or of the wrong kind."""


class CampaignError(MdxferError):
    """A campaign file, profile or database is invalid or cannot be used."""


class StageFailure(Exception):
    """A campaign task stage failed (any exception inside it, wrapped). ``kind`` is its failure
    class (:mod:`mdxfer.campaign.retry`): molecule | forcefield | box | protocol | lammps_input
    | lammps | error | stopped. Picklable, so every executor reports the same reason."""

    def __init__(self, message: str, stage: str, kind: str, workdir: str = ""):
        super().__init__(message, stage, kind, workdir)
        self.message, self.stage, self.kind, self.workdir = message, stage, kind, workdir

    def __str__(self) -> str:
        return self.message


class DataError(MdxferError):
    """An input table, a model folder or the source data of the learning side is missing or
    malformed."""


class ALError(MdxferError):
    """An active-learning setting, state or input is invalid."""
