"""The media relay: forwards RTP between the two legs of a room without decoding."""
