from .agencies import Agency, AgencyMember, Placement, RecallReason
from .matters import DocumentKind, Hearing, LegalDocument, LegalMatter, MatterStatus

__all__ = [
    "Agency",
    "AgencyMember",
    "DocumentKind",
    "Hearing",
    "LegalDocument",
    "LegalMatter",
    "MatterStatus",
    "Placement",
    "RecallReason",
]
