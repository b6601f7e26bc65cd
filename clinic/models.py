"""Every table, imported in one place so that the metadata (and Alembic) sees the whole model."""

from clinic.audit import AuditEvent
from clinic.auth.models import ApiToken, Credential, FormDraft, StaffRole, StaffSite, StaffUser
from clinic.capacity.models import CapacityScenario
from clinic.outbox import JobWatermark, OutboxMessage
from clinic.outcomes.models import ScaleItemAnswer, ScaleResponse
from clinic.patients.models import (
    Consent,
    EligibilityEvaluation,
    Patient,
    PatientFlag,
    WaitlistEntry,
    WeightMeasurement,
)
from clinic.sessions.models import (
    Chair,
    Protocol,
    Shift,
    ShiftException,
    ShiftPattern,
    Site,
    TreatmentCourse,
    TreatmentSession,
)
from clinic.vitals.models import (
    AdverseEvent,
    Alert,
    ChecklistEntry,
    DoseAdministration,
    DoseEvent,
    VitalsReading,
)

__all__ = [
    "AdverseEvent", "Alert", "ApiToken", "AuditEvent", "CapacityScenario", "Chair", "ChecklistEntry",
    "Consent", "Credential", "DoseAdministration", "DoseEvent", "EligibilityEvaluation", "FormDraft",
    "JobWatermark", "OutboxMessage", "Patient", "PatientFlag", "Protocol", "ScaleItemAnswer",
    "ScaleResponse", "Shift", "ShiftException", "ShiftPattern", "Site", "StaffRole", "StaffSite",
    "StaffUser", "TreatmentCourse", "TreatmentSession", "VitalsReading", "WaitlistEntry",
    "WeightMeasurement",
]
