/**
 * The account events the history records. Entries are written by the store method that makes the
 * change they describe, in the same batch, so an event is never lost and never recorded for a
 * change that did not happen. `details` must never hold passwords, codes or tokens.
 */
export { ACTIVITY_TYPES, type ActivityRecord, type ActivityType, type RequestMeta } from "../../store";
