//! Test sends: a campaign's answer rendered for one row and sent to the admin's own number or
//! address through the campaign's sender, outside any outreach. See [`crate::TestSends`].

use herald_core::Channel;
use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

/// A test send about to be handed to the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTestSend {
    pub campaign_id: Uuid,
    pub channel: Channel,
    /// The number (E.164) or email address it goes to.
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    /// Who asked for it: the user's email or the API token's name.
    pub requested_by: String,
}

/// What became of a test send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TestSendState {
    /// Written down; the provider's answer is not recorded (in flight, or Herald stopped before
    /// the answer was written: it may or may not have gone out).
    Sending,
    /// The provider accepted it.
    Sent,
    /// The provider refused it or could not be reached.
    Failed,
}

/// A recorded test send.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestSend {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub channel: Channel,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    pub requested_by: String,
    pub state: TestSendState,
    /// The provider's id for the message (Twilio's SID, the SMTP `Message-ID`).
    pub provider_message_id: Option<String>,
    /// Why it failed, in words.
    pub error: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
}
