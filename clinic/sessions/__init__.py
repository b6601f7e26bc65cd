"""Where and when treatment happens: sites and chairs, rota, protocols, courses and booked sessions."""
