export { Mailbox, type MailboxOptions } from "./mailbox.js";
export { type ChannelMemberView, type ChannelView } from "./channels.js";
export { MAX_CLOCK_LEAD_MS } from "./opening.js";
export { School, type SchoolMember, type SchoolView, type VouchView } from "./school.js";
export {
  carrierLimits, MailboxError, type BuddiesChange, type BuddyView, type Candidate, type NearbyView, type PersonView, type CarrierLimits, type DraftView, type Incoming, type MailboxEvents, type MessageQuery,
  type FolderPage, type FolderPages, type MessageState, type MessageView, type ReceiptEvent, type ReceiveResult, type RequestView,
} from "./types.js";
export { Forgetting, type ForgottenArrival } from "./forgetting.js";
