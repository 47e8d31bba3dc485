//! Every error code the box's API can answer, in one place: the OpenAPI
//! document lists them (`Error.error.code`) and the staff app has a
//! sentence for each in every language (`web/strings.js`); tests hold
//! the three equal. The message beside a code says the details.

/// Declares the codes once: the enum, its wire names, and the list.
macro_rules! error_codes {
    ($($variant:ident => $name:literal,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order declared.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as the API sends it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }
        }
    };
}

error_codes! {
    AmountOutOfRange => "amount_out_of_range",
    ApprovalRefused => "approval_refused",
    ApprovalRequired => "approval_required",
    AttendeeLimit => "attendee_limit",
    AttendeeRequired => "attendee_required",
    AttendeeTicketInvalid => "attendee_ticket_invalid",
    BackupDamaged => "backup_damaged",
    BackupExists => "backup_exists",
    BadRequest => "bad_request",
    BadRestock => "bad_restock",
    BadTender => "bad_tender",
    BadTime => "bad_time",
    BodyTooLarge => "body_too_large",
    BodyTooSlow => "body_too_slow",
    Busy => "busy",
    ChecksumMismatch => "checksum_mismatch",
    ClockBeforeRecords => "clock_before_records",
    Closed => "closed",
    CodeUsedUp => "code_used_up",
    ConfirmClockJump => "confirm_clock_jump",
    Conflict => "conflict",
    ContentType => "content_type",
    DeviceNotPaired => "device_not_paired",
    DiskFull => "disk_full",
    Empty => "empty",
    Expired => "expired",
    Forbidden => "forbidden",
    HoldNotActive => "hold_not_active",
    Internal => "internal",
    Interrupted => "interrupted",
    InvalidDrop => "invalid_drop",
    JoinCodeInvalid => "join_code_invalid",
    LinkOff => "link_off",
    ManifestInvalid => "manifest_invalid",
    ManifestNotNewer => "manifest_not_newer",
    ManifestOtherEvent => "manifest_other_event",
    ManifestSignature => "manifest_signature",
    MethodNotAllowed => "method_not_allowed",
    NoEvent => "no_event",
    NoLan => "no_lan",
    NonceReused => "nonce_reused",
    NotFound => "not_found",
    NotOpenYet => "not_open_yet",
    NotPrimary => "not_primary",
    NotSimulating => "not_simulating",
    NotValidYet => "not_valid_yet",
    OffsetMismatch => "offset_mismatch",
    PairingCodeInvalid => "pairing_code_invalid",
    PinsLocked => "pins_locked",
    PoolShort => "pool_short",
    PrimaryUnreachable => "primary_unreachable",
    ProgramFull => "program_full",
    QuotaReached => "quota_reached",
    ReasonRequired => "reason_required",
    RehearsalRunning => "rehearsal_running",
    RehearsalUnavailable => "rehearsal_unavailable",
    ReservationFull => "reservation_full",
    ShuttingDown => "shutting_down",
    SignInInProgress => "sign_in_in_progress",
    SoldOut => "sold_out",
    StandbyBehind => "standby_behind",
    SyncOff => "sync_off",
    TenderRequired => "tender_required",
    TicketAdmitted => "ticket_admitted",
    TierSoldOut => "tier_sold_out",
    TooLarge => "too_large",
    TooManyAttempts => "too_many_attempts",
    TooManyFeeds => "too_many_feeds",
    TooManyLookups => "too_many_lookups",
    TooManyOpenUploads => "too_many_open_uploads",
    TusVersion => "tus_version",
    Unauthorized => "unauthorized",
    UnknownCode => "unknown_code",
    UnknownCreator => "unknown_creator",
    UnknownGate => "unknown_gate",
    UnknownProduct => "unknown_product",
    UnknownReferral => "unknown_referral",
    UnknownTier => "unknown_tier",
    UnsupportedMedia => "unsupported_media",
    UnsupportedMediaType => "unsupported_media_type",
    UploadBusy => "upload_busy",
    UploadGone => "upload_gone",
    WrongTier => "wrong_tier",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
