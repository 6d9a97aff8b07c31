/** What an emailed one-time code can be for. A code proves the address it was mailed to, for one purpose. */
export const OTP_PURPOSES = ["verify_email", "login", "reset_password", "change_email"] as const;
export type OtpPurpose = (typeof OTP_PURPOSES)[number];

/**
 * The purposes anyone may request by address (`POST /auth/otp`). A `change_email` code is mailed
 * only when a signed-in user asks to move their account to a new address (`PATCH /me`).
 */
export const REQUESTABLE_PURPOSES = ["verify_email", "login", "reset_password"] as const satisfies readonly OtpPurpose[];
export type RequestablePurpose = (typeof REQUESTABLE_PURPOSES)[number];

export const OTP_LENGTH = 6;
export const CODE_PATTERN = /^\d{6}$/;
