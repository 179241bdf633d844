cat /app/greeting
