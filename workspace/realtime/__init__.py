"""Real-time collaboration over Socket.IO: connection auth, rooms, presence and the events of the contract."""
